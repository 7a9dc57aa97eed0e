"""mammocad model component."""

"""mammocad worker component."""

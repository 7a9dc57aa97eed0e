"""mammocad node component."""

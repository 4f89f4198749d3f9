"""rtvoice.core."""

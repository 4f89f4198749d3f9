"""rtvoice.bridge."""

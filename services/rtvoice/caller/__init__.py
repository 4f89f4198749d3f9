"""rtvoice.caller."""

"""rtvoice.localrt."""

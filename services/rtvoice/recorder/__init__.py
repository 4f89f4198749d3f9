"""rtvoice.recorder."""

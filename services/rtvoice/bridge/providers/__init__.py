"""rtvoice.bridge.providers."""

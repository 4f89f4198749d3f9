"""rtvoice.ingress."""

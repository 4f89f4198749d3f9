"""rtvoice: a self-hostable realtime voice agent platform."""

__version__ = "0.1.0"

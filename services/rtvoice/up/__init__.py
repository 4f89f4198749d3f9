"""``rtvoice up``: the whole platform as local processes on loopback."""

from rtvoice.up.cli import register

__all__ = ["register"]

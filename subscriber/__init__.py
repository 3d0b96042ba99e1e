"""Turns 5G-core mobility signals into safe, durable edge-application relocations."""

__version__ = "0.1.0"

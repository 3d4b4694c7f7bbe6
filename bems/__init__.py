"""BEMS: building energy management for government administrative centres in Vietnam."""

__version__ = "0.1.0"

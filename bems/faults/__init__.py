"""Fault detection and diagnostics (rules in `rules`, loading and storing in `engine`)."""

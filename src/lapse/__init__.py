"""Lapse: temporary download links that are exactly right under concurrency."""

__version__ = "0.1.0"

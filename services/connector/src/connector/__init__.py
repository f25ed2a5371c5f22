"""The connector service."""

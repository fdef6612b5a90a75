"""The recognition service."""

"""The access service."""

"""The hotlist service."""

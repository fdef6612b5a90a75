"""Reads from existing OpenALPR (`alprd`) and Rekor Scout camera agents, posted unchanged to ingest (issue 9)."""

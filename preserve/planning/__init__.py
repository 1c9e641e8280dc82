"""Preservation Planning (OAIS functional entity): format policy and the risk report,
re-identification, and migration proven by decoded content before a version keeps it."""

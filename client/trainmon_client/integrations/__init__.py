"""Framework integrations, each behind an optional import."""

"""Use cases: authorize, refresh, delete, settings, scheduling. Async; they receive ports."""

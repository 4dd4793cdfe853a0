"""Serving mode: start the engine's own OpenAI-compatible server, drive it over HTTP, measure a
steady-state window. Engine specifics live only in `servers.py` (a command registry)."""

"""Integration tests: Booklab's steps against real services (Docker, Redis, git)."""

"""The server fixtures come from tests/conftest.py (tests/fixtures_servers.py)."""

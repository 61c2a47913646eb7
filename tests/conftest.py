"""Shared fixtures. Service fixtures (PostgreSQL, Azurite) live in tests/fixtures/services.py."""

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.models", "tests.fixtures.full_disk"]

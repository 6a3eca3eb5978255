"""Admin REST API tests."""

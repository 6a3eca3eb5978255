"""Operator console (Textual) tests."""

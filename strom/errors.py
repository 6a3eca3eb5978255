"""Exceptions that reach a user as one line of text, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the CLI prints the message and exits with code 1."""

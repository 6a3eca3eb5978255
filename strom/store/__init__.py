"""Storage: SQLite through aiosqlite, numbered migrations, one repository per concept."""

from strom.store.db import Database

__all__ = ["Database"]

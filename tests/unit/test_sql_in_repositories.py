"""One home for SQL (docs/architecture.md, "The store"): repositories only.

Every string literal in the code outside the repositories is read for SQL; a statement found
names its file and line, so the next inline query fails here and not in review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("strom", "bots", "tui", "relay")
# The repositories: strom's store and session SQL, and the relay's own store (it stands
# beside strom with a database of its own, relay/README.md).
REPOSITORIES = ("strom/store/", "strom/sessions/repository.py", "relay/store.py",
                "relay/query.py")
SQL = re.compile(r"\b(SELECT\s.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|"
                 r"DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|DROP\s+TABLE)\b", re.S)


def _sql_outside_repositories() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name.startswith(REPOSITORIES):
                continue
            for node in ast.walk(ast.parse(path.read_text(), name)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and SQL.search(node.value):
                    found.append(f"{name}:{node.lineno}: {node.value.strip()[:60]!r}")
    return found


def test_the_pattern_finds_the_statements_strom_writes() -> None:
    for statement in ("SELECT k1, used_at FROM withdraw_links WHERE session_id = ?",
                      "INSERT INTO ledger (at) VALUES (?)", "INSERT OR IGNORE INTO zaps",
                      "UPDATE refunds SET state = 'failed'", "DELETE FROM sessions"):
        assert SQL.search(statement), statement
    for words in ("Select a charger from the list", "update the firmware",
                  "the payer may delete the DM"):
        assert not SQL.search(words), words


def test_no_sql_outside_the_repositories() -> None:
    assert _sql_outside_repositories() == []

"""All SQL is in ``ivr/store/``: checked on the source of every other module with ``ast``.

The repositories of :mod:`ivr.store` are the interface a PostgreSQL backend
implements; SQL anywhere else would bypass it (and the write lock). A module
outside the store may not call ``execute``, ``executemany``, ``executescript``
or ``execute_fetchall`` on anything, nor hold a string that starts like a
statement (``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE``, ``CREATE``,
``ALTER``, ``PRAGMA``, ``WITH``), in a plain string or at the start of an
f-string.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STORE = ROOT / "ivr" / "store"
EXECUTE = frozenset({"execute", "executemany", "executescript", "execute_fetchall"})
STATEMENT = re.compile(r"\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|PRAGMA|WITH)\s")


def _sources(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def sql_in(source: str, name: str = "<source>") -> list[str]:
    """Where ``source`` runs SQL or holds a SQL statement: ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in EXECUTE:
                found.append(f"{node.lineno}: calls {called}()")
        # The text parts of an f-string are string constants of their own, so
        # its start is caught here too.
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and STATEMENT.match(node.value)
        ):
            found.append(f"{node.lineno}: SQL {node.value.strip()[:40]!r}")
    return found


OUTSIDE = [
    p.relative_to(ROOT).as_posix() for p in _sources(ROOT / "ivr") if not p.is_relative_to(STORE)
]


@pytest.mark.parametrize("relpath", OUTSIDE)
def test_no_sql_outside_the_store(relpath: str) -> None:
    source = (ROOT / relpath).read_text(encoding="utf-8")
    assert sql_in(source, relpath) == [], f"{relpath} runs SQL: move it into ivr/store/"


def test_the_check_finds_sql_where_it_is() -> None:
    # Every kind the rule names is caught ...
    snippet = '''
async def f(db, table):
    await db.execute("x")
    await db.executemany("x", [])
    db.execute_fetchall("x")
    q = "SELECT * FROM calls"
    q2 = f"UPDATE {table} SET a = 1"
    q3 = """
        INSERT INTO t VALUES (1)"""
    q4 = "PRAGMA user_version"
    q5 = "WITH x AS (SELECT 1) SELECT * FROM x"
    q6 = "DELETE FROM users"
'''
    found = sql_in(snippet)
    assert len(found) == 9, found
    # ... and what merely looks alike is not: HTTP methods, prose, lower case.
    harmless = """
ROUTES = [("DELETE", "/v1/users/{id}", h), ("PATCH", "/x", h)]
doc = "Delete a recording and update its call"
note = "select a team"
"""
    assert sql_in(harmless) == []
    # The store itself holds SQL, so the check is looking at the right thing.
    store_hits = [hit for p in _sources(STORE) for hit in sql_in(p.read_text(encoding="utf-8"))]
    assert len(store_hits) > 50
    assert len(OUTSIDE) > 50

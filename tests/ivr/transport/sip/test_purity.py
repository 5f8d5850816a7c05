"""The SIP core is sans-I/O: no module of ivr/transport/sip imports a clock, sockets or files.

The driver (the asyncio edge) owns all of that; here every import is read
with ``ast``, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIP = Path(__file__).resolve().parents[4] / "ivr" / "transport" / "sip"
BANNED = {"asyncio", "socket", "time", "os", "selectors", "threading", "ssl", "aiohttp", "pathlib"}
MODULES = sorted(SIP.glob("*.py"))


def test_the_package_is_found() -> None:
    assert {p.name for p in MODULES} >= {"message.py", "errors.py", "framing.py"}


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & BANNED, f"{path.name} imports {sorted(imported & BANNED)}"


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 420

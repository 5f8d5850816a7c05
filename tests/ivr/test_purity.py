"""The sans-I/O core and media/ import no I/O: checked on their source with ``ast``.

docs/architecture.md: the flow engine is a pure state machine, and ``media/`` is numpy (plus
soundfile in :mod:`media.wavfile` only) and never imports asyncio, aiohttp or
``ivr``. Every import counts, also one inside a function, a relative one, or a
call of ``__import__`` / ``importlib.import_module`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = frozenset({"asyncio", "aiohttp", "soundfile", "time", "socket"})
# The flow engine, its nodes and the compliance proof touch no file either
# (the config reads the YAML and checks the prompt files, not ivr.flows).
FLOWS_BANNED = frozenset({"os", "pathlib", "subprocess", "sqlite3", "aiosqlite", "yaml"})
FLOWS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "ivr" / "flows").rglob("*.py"))
CORE = [
    *FLOWS,
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "ivr" / "config").rglob("*.py")),
    "ivr/e164.py",
]
MEDIA = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "media").rglob("*.py"))
SOUNDFILE_ALLOWED = {"media/wavfile.py"}


def module_name(relpath: str) -> str:
    parts = relpath.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, relpath: str) -> set[str]:
    """Every module a source file imports, as absolute dotted names."""
    package = module_name(relpath).split(".")
    if not relpath.endswith("__init__.py"):
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=relpath)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                prefix = ".".join(base)
                if node.module:
                    found.add(f"{prefix}.{node.module}" if prefix else node.module)
                else:
                    found.update(f"{prefix}.{a.name}" if prefix else a.name for a in node.names)
            else:
                assert node.module is not None
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if (
                name in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.add(first.value)
    return found


def forbidden(relpath: str, source: str) -> list[str]:
    """The imports of ``relpath`` that break docs/architecture.md's rules."""
    banned = set(IO_MODULES)
    if relpath.startswith("ivr/flows/"):
        banned |= FLOWS_BANNED
    if relpath.startswith("media/"):
        banned.add("ivr")
        if relpath in SOUNDFILE_ALLOWED:
            banned.discard("soundfile")
    return sorted(m for m in imported_modules(source, relpath) if m.split(".")[0] in banned)


# ------------------------------------------------------------------ the rules


def test_media_modules_are_found() -> None:
    assert "media/__init__.py" in MEDIA
    assert "media/frame.py" in MEDIA
    assert {"ivr/flows/engine.py", "ivr/flows/compliance.py", "ivr/flows/nodes.py"} <= set(FLOWS)


@pytest.mark.parametrize("relpath", CORE + MEDIA)
def test_module_imports_no_io(relpath: str) -> None:
    source = (ROOT / relpath).read_text(encoding="utf-8")
    assert forbidden(relpath, source) == []


# ---------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("relpath", "source", "expected"),
    [
        ("ivr/flows/engine.py", "import asyncio", ["asyncio"]),
        ("ivr/flows/engine.py", "import asyncio.tasks as t", ["asyncio.tasks"]),
        ("ivr/flows/engine.py", "from time import monotonic", ["time", "time.monotonic"]),
        ("ivr/config/load.py", "def f():\n    import socket\n", ["socket"]),
        ("ivr/flows/engine.py", "from aiohttp import web", ["aiohttp", "aiohttp.web"]),
        ("ivr/flows/engine.py", "import soundfile as sf", ["soundfile"]),
        ("ivr/flows/engine.py", "__import__('time')", ["time"]),
        (
            "ivr/flows/engine.py",
            "import importlib\nimportlib.import_module('asyncio')",
            ["asyncio"],
        ),
        ("media/dtmf.py", "from ivr.errors import IvrError", ["ivr.errors", "ivr.errors.IvrError"]),
        ("media/dtmf.py", "import ivr", ["ivr"]),
        ("media/dtmf.py", "from .. import ivr", ["ivr"]),
        ("media/dtmf.py", "from ..ivr.flow import Play", ["ivr.flow"]),
        ("media/dtmf.py", "import soundfile", ["soundfile"]),
        ("ivr/flows/nodes.py", "from pathlib import Path", ["pathlib", "pathlib.Path"]),
        ("ivr/flows/compliance.py", "import yaml", ["yaml"]),
        ("media/wavfile.py", "import soundfile\nimport time", ["time"]),
    ],
)
def test_checker_catches_forbidden_imports(relpath: str, source: str, expected: list[str]) -> None:
    assert forbidden(relpath, source) == expected


@pytest.mark.parametrize(
    ("relpath", "source"),
    [
        (
            "ivr/flows/engine.py",
            "import hashlib\nfrom ivr.flows.nodes import Flow\nfrom . import errors",
        ),
        ("ivr/flows/engine.py", "import timeit\nimport sockets_lib\nimport datetime"),
        ("media/frame.py", "import numpy as np\nfrom media import g711\nfrom .errors import X"),
        ("media/wavfile.py", "import soundfile as sf"),
        ("media/dtmf.py", "from .ivrish import x\nimport media.ivr_like"),
    ],
)
def test_checker_allows_pure_imports(relpath: str, source: str) -> None:
    assert forbidden(relpath, source) == []


def test_relative_imports_resolve_to_their_package() -> None:
    assert imported_modules("from .errors import BadFrame", "media/frame.py") == {"media.errors"}
    assert imported_modules("from . import g711", "media/__init__.py") == {"media.g711"}
    assert imported_modules("from ..ivr import flow", "media/sub/x.py") == {"media.ivr"}

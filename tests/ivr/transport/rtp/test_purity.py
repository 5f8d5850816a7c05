"""The RTP core is sans-I/O: no event loop, socket, clock, entropy or file, checked on its source.

The lead's asyncio edge reads the clock and the sockets and draws the
random values; this package only computes. Same checker as
``tests/ivr/test_purity.py`` (every import counts, in functions too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ivr.test_purity import ROOT, imported_modules

PACKAGE = ROOT / "ivr" / "transport" / "rtp"
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py"))
BANNED = frozenset(
    {
        "asyncio", "aiohttp", "socket", "selectors", "ssl", "time", "datetime", "os", "pathlib",
        "random", "secrets", "threading", "subprocess", "uuid", "logging", "ivr.call",
        "ivr.server", "ivr.store",
    }
)  # fmt: skip


def test_the_package_is_found() -> None:
    names = {Path(m).name for m in MODULES}
    assert {"packet.py", "receiver.py", "sender.py", "rtcp.py", "sdp.py"} <= names


def banned(relpath: str, source: str) -> list[str]:
    found = imported_modules(source, relpath)
    return sorted(m for m in found if any(m == b or m.startswith(b + ".") for b in BANNED))


@pytest.mark.parametrize("relpath", MODULES)
def test_module_imports_nothing_that_does_io(relpath: str) -> None:
    assert banned(relpath, (ROOT / relpath).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import secrets", ["secrets"]),
        ("def f():\n    from time import monotonic\n", ["time", "time.monotonic"]),
        ("from ivr.call.leg import Leg", ["ivr.call.leg", "ivr.call.leg.Leg"]),
        ("import os.path", ["os.path"]),
        ("import numpy\nfrom media import g711\nfrom ivr.errors import IvrError", []),
        ("import timeit\nimport randomness", []),
    ],
)
def test_the_rule_catches_what_it_should_and_only_that(source: str, expected: list[str]) -> None:
    assert banned("ivr/transport/rtp/x.py", source) == expected


def test_the_package_exports_what_the_driver_uses() -> None:
    from ivr.transport import rtp

    missing = [name for name in rtp.__all__ if not hasattr(rtp, name)]
    assert missing == []
    assert {"answer", "RtpReceiver", "RtpSender", "RtcpSession", "parse_sdp"} <= set(rtp.__all__)

"""The real SIP tools: each test names the ones it runs with ``@pytest.mark.tools(...)``.

``.ci/setup --test`` installs them (Debian's ``sip-tester``, ``baresip`` and
``linphone-cli``). A test whose tool is missing is skipped on a developer's
machine, and fails where ``CI`` is set in the environment, so that CI cannot
pass by skipping.
"""

from __future__ import annotations

import importlib
import math
import os
import struct
from pathlib import Path

import pytest

from tests.sipkit.process import write_wav

DRIVERS = {"sipp": "sipp", "baresip": "baresip", "linphone": "linphone"}


def available(tool: str) -> bool:
    """Whether the tool's binaries (and modules) are installed: its driver's ``available()``."""
    driver = importlib.import_module(f"tests.sipkit.{DRIVERS[tool]}")
    return bool(driver.available())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tools(*names): runs the real SIP tools named (sipp, baresip, linphone)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("tools"):
        missing = [name for name in marker.args if not available(name)]
        if not missing:
            continue
        message = f"not installed: {', '.join(missing)} (run .ci/setup --test)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def tone(ms: int, freq: float = 440.0, rate: int = 8000) -> bytes:
    """16-bit samples of a sine at a quarter of full scale."""
    count = rate * ms // 1000
    return b"".join(
        struct.pack("<h", round(8000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(count)
    )


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """One second of 440 Hz at 8 kHz: a microphone for baresip and linphone."""
    return write_wav(tmp_path / "tone.wav", tone(1000))

"""The config's sip: section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.config import SipSettings, load_config
from ivr.errors import InvalidConfig
from tests.conftest import build_config


def test_sip_is_off_by_default_in_the_shipped_config() -> None:
    assert load_config(None).sip == SipSettings()
    assert SipSettings().enabled is False
    assert SipSettings().transports == ["udp", "tcp"]


def test_a_sip_section_is_read(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_data["sip"] = {
        "enabled": True,
        "host": "0.0.0.0",
        "public_address": "203.0.113.5",
        "port": 5070,
        "transports": ["udp"],
        "rtp_ports": "40000-40099",
        "max_calls": 10,
    }
    sip = build_config(config_data, tmp_path).sip
    assert (sip.enabled, sip.port, sip.transports, sip.max_calls) == (True, 5070, ["udp"], 10)
    assert sip.public_address == "203.0.113.5"


@pytest.mark.parametrize(
    ("sip", "path"),
    [
        ({"rtp_ports": "40001-40002"}, "sip.rtp_ports"),
        ({"rtp_ports": "100-200"}, "sip.rtp_ports"),
        ({"transports": ["tls"]}, "sip.transports"),
        ({"port": 70000}, "sip.port"),
        ({"listen": "x"}, "sip.listen"),
    ],
)
def test_a_bad_sip_section_is_refused(
    config_data: dict[str, Any], tmp_path: Path, sip: dict[str, Any], path: str
) -> None:
    config_data["sip"] = sip
    with pytest.raises(InvalidConfig) as caught:
        build_config(config_data, tmp_path)
    assert any(p.path.startswith(path) for p in caught.value.problems), caught.value.problems

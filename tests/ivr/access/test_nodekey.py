"""The cluster key: made once per data folder, and node credentials only it can sign."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ivr.access.nodekey import KEY_FILE, check, node_key, sign
from ivr.errors import AuthError

NOW = 1_800_000_000.0


def test_the_key_is_made_once_private_and_the_same_for_nodes_starting_at_once(
    tmp_path: Path,
) -> None:
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(node_key(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert len(keys[0]) == 32
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # nothing left aside


def test_credentials_name_their_node_and_anything_else_is_refused_saying_why(
    tmp_path: Path,
) -> None:
    key = node_key(tmp_path)
    signed = sign(key, "node-1", NOW)
    assert check(key, signed, NOW + 30) == "node-1"
    cases = {
        "": "malformed",
        "node-1": "malformed",
        signed[:-1] + ("0" if signed[-1] != "0" else "1"): "do not match",
        signed.replace("node-1", "node-2", 1): "do not match",
        sign(b"x" * 32, "node-1", NOW): "do not match",
    }
    for credentials, why in cases.items():
        with pytest.raises(AuthError, match=why):
            check(key, credentials, NOW)
    with pytest.raises(AuthError, match="too old"):
        check(key, signed, NOW + 61)
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(AuthError, match="not 32 bytes"):
        node_key(tmp_path)

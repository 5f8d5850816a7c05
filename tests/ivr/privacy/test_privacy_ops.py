"""Access export, erasure (with a crash in the middle) and retention, end to end."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr import privacy, stamp
from ivr.server.keys import store_key
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, noise_frames

CONTACT = "+15557770001"
OTHER = "+15557770002"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    client: TestClient[web.Request, web.Application],
    new_caller: Callable[..., Caller],
    frm: str,
    digit: str,
    number: str = "+15550100",
) -> dict[str, Any]:
    caller = new_caller(client)
    await caller.dial(number, frm=frm, client_ref=f"ref-{frm}")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": digit})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(15))
    await asyncio.sleep(0.35)
    hangup = await caller.hangup()
    await caller.closed_wait()
    return hangup


def all_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


async def test_export_then_erase_a_contact_who_called_five_times(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    sup = await add_user(client, "sup@example.com", "supervisor")
    hangups = [await call(client, new_caller, CONTACT, d) for d in "12112"]
    await call(client, new_caller, OTHER, "1")
    recorded = [h["stats"]["recording_id"] for h in hangups if h["stats"]["recording_id"]]
    assert len(recorded) == 3
    # +15550100 transcribes (its AI notice is played): wait, bounded, for the worker.
    for _ in range(300):
        statuses = [
            (await client.get(f"/v1/recordings/{r}/transcript", headers=bearer(sup))).status
            for r in recorded
        ]
        if statuses == [200, 200, 200]:
            break
        await asyncio.sleep(0.2)
    assert statuses == [200, 200, 200]
    before = await (await client.get("/v1/analytics/summary", headers=bearer(sup))).json()

    resp = await client.post("/v1/privacy/exports", headers=bearer(sup), json={"contact": CONTACT})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    manifest = json.loads(archive.read("manifest.json"))
    names = set(archive.namelist())
    assert {e["path"] for e in manifest["files"]} | {"manifest.json"} == names
    for entry in manifest["files"]:
        assert hashlib.sha256(archive.read(entry["path"])).hexdigest() == entry["sha256"]
    calls = json.loads(archive.read("calls.json"))
    assert len(calls) == 5
    assert {c["contact"] for c in calls} == {CONTACT}
    assert len(archive.read("calls.csv").decode().splitlines()) == 6
    consents = json.loads(archive.read("consents.json"))
    assert sorted(c["decision"] for c in consents) == ["granted"] * 3 + ["refused"] * 2
    store = client.app[store_key]
    for rec_id in recorded:
        row = await store.recordings.get(rec_id)
        with store.recording_audio(row.path) as audio:
            stored = audio.read_at(0, audio.size)
        assert archive.read(f"recordings/{rec_id}.wav") == stored
        assert json.loads(archive.read(f"transcripts/{rec_id}.json"))
    assert not list((store.data_dir / "exports").iterdir())  # the temporary ZIP is gone

    resp = await client.post(
        "/v1/privacy/erasures", headers=bearer(admin), json={"contact": CONTACT}
    )
    assert resp.status == 201
    receipt = await resp.json()
    assert receipt["erased"] == {
        "recordings": 3,
        "transcripts": 3,
        "consents": 5,
        "calls_pseudonymised": 5,
        "live_recordings_stopped": 0,
        "data_keys_destroyed": 6,  # three recordings' and three transcripts'
    }
    assert receipt["recording_blocked"] is True
    assert CONTACT not in json.dumps(receipt)
    after = await (await client.get("/v1/analytics/summary", headers=bearer(sup))).json()
    for key in ("calls", "answered", "consent_asked", "consent_granted", "consent_rate"):
        assert after[key] == before[key], key
    assert after["recorded"] == before["recorded"]  # calls recorded, not files kept
    other = await (
        await client.get(f"/v1/recordings?contact=%2B{OTHER[1:]}", headers=bearer(sup))
    ).json()
    assert len(other["items"]) == 1  # the other caller keeps theirs
    await client.close()
    needles = [CONTACT.encode(), CONTACT[1:].encode(), f"ref-{CONTACT}".encode()]
    for path, data in all_bytes(tmp_path / "data"):
        for needle in needles:
            assert needle not in data, (path, needle)
    assert any(OTHER.encode() in data for _, data in all_bytes(tmp_path / "data"))


async def test_erasing_an_agent_removes_the_user_and_pseudonymises_their_calls(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    ana = await add_user(client, "ana.erasable@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, ana)
    caller = new_caller(client)
    answered = await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await agent.wait_for("offer")
    await agent.send({"type": "answer", "call_id": answered["call_id"]})
    await caller.wait_for("connected")
    await asyncio.sleep(0.2)
    await caller.hangup()
    await caller.closed_wait()
    await agent.close()
    me = await (await client.get("/v1/me", headers=bearer(ana))).json()
    resp = await client.post(
        "/v1/privacy/erasures", headers=bearer(admin), json={"agent_id": me["id"]}
    )
    assert resp.status == 201
    receipt = await resp.json()
    assert receipt["erased"]["recordings"] == 1
    assert receipt["erased"]["calls_pseudonymised"] == 1
    assert (await client.get("/v1/me", headers=bearer(ana))).status == 401
    store = client.app[store_key]
    row = await store.calls.get(answered["call_id"])
    assert (row.agent_id or "").startswith("ps_")
    assert row.agent_name is None
    await client.close()
    for path, data in all_bytes(tmp_path / "data"):
        assert b"ana.erasable@example.com" not in data, path
        assert b"Ana.Erasable" not in data, path


async def test_an_erasure_cut_short_completes_at_the_next_start(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    data = tmp_path / "crash"
    client = await start_app(data_dir=data)
    hangup = await call(client, new_caller, CONTACT, "1")
    store = client.app[store_key]
    rec = await store.recordings.get(hangup["stats"]["recording_id"])
    # What erase() does first, then the crash: the job row exists and the file is
    # already gone, but no row has changed yet.
    await store.db.execute(
        "INSERT INTO erasure_jobs (id, kind, subject, pseudonym, requested_by, started_at) "
        "VALUES ('e_crash', 'contact', ?, ?, 'test', '2026-01-01T00:00:00.000Z')",
        (CONTACT, privacy.pseudonym(store, "contact", CONTACT)),
    )
    await store.db.commit()
    store.recording_path(rec.path).unlink()
    await client.close()
    client2 = await start_app(data_dir=data)
    store2 = client2.app[store_key]
    receipts = await privacy.receipts(store2)
    assert [r["id"] for r in receipts] == ["e_crash"]
    assert receipts[0]["erased"]["calls_pseudonymised"] == 1
    items, _ = await store2.recordings.page()
    assert items == []
    await client2.close()
    for path, blob in all_bytes(data):
        assert CONTACT.encode() not in blob, path


async def test_retention_deletes_exactly_the_expired_recordings(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    config_data["teams"]["desk"]["bots"] = 2
    client = await start_app(config_data)
    admin = await add_user(client, "adm@example.com", "admin")
    first = await call(client, new_caller, CONTACT, "1")
    second = await call(client, new_caller, OTHER, "1", number="+15550102")
    store = client.app[store_key]
    now = datetime.now(UTC)
    # +15550100 keeps 90 days, +15550102 too; shorten one number to 10 days.
    resp = await client.patch(
        "/v1/numbers/+15550100", headers=bearer(admin), json={"retention_days": 10}
    )
    assert resp.status == 200
    r1 = await store.recordings.get(first["stats"]["recording_id"])
    assert (r1.expires_at or "") < stamp.iso(now + timedelta(days=11))
    nothing = await privacy.purge_expired(store, now + timedelta(days=9))
    assert nothing["recordings"] == 0
    receipt = await privacy.purge_expired(store, now + timedelta(days=10, minutes=1))
    assert receipt["recordings"] == 1
    items, _ = await store.recordings.page()
    assert [i.id for i in items] == [second["stats"]["recording_id"]]
    assert not store.recording_path(r1.path).exists()
    assert (await privacy.purge_expired(store, now + timedelta(days=91)))["recordings"] == 1
    resp = await client.post("/v1/privacy/retention/run", headers=bearer(admin))
    assert (await resp.json())["recordings"] == 0


def test_cli_export_erase_purge(tmp_path: Path) -> None:
    data = tmp_path / "cli"
    ivr = [sys.executable, "-m", "ivr"]
    run = subprocess.run(
        [*ivr, "erase", "--contact", CONTACT, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "no database" in run.stderr
    subprocess.run(
        [
            *ivr,
            "users",
            "add",
            "--email",
            "a@example.com",
            "--name",
            "A",
            "--role",
            "agent",
            "--data",
            str(data),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    out = tmp_path / "a.zip"
    run = subprocess.run(
        [*ivr, "export", "--agent", "a@example.com", "--out", str(out), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["counts"]["calls"] == 0
    run = subprocess.run(
        [*ivr, "erase", "--agent", "a@example.com", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["subject"]["kind"] == "agent"
    run = subprocess.run(
        [*ivr, "purge", "--data", str(data)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0
    assert json.loads(run.stdout)["recordings"] == 0
    run = subprocess.run(
        [*ivr, "erase", "--contact", "12345", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "E.164" in run.stderr

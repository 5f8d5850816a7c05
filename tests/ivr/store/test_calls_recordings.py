"""The calls and recordings repositories on a real database, and the call path's interface."""

from __future__ import annotations

import json

import pytest

from ivr.errors import NotFound, StoreError
from ivr.stamp import now_iso
from ivr.store import CallRow, NewCall, NewConsent, RecordingRow, Store
from tests.ivr.store.conftest import a_call, a_recording

DECISION = {"record": True, "line": "recorded", "reasons": []}


async def test_a_contact_is_one_exact_number(store: Store) -> None:
    first = await store.calls.contact_id("+15557654321")
    assert await store.calls.contact_id("+15557654321") == first
    assert await store.calls.contact_id("+15557654322") != first
    with pytest.raises(StoreError):
        await store.calls.contact_id("+15557654321 x")


async def test_a_call_round_trips_as_a_typed_row_with_json_decoded(store: Store) -> None:
    call_id = await a_call(store)
    await store.calls.update(call_id, line="recorded", team="support", recording_decision=DECISION)
    await store.calls.update(
        call_id, ended_at="2026-01-01T00:00:01.000Z", end_reason="caller", stats={"frames": 3}
    )
    call = await store.calls.get(call_id)
    assert isinstance(call, CallRow)
    assert (call.contact, call.line, call.end_reason) == ("+15557654321", "recorded", "caller")
    assert call.recording_decision == DECISION
    assert call.stats == {"frames": 3}
    assert call.subject_erased is False
    with pytest.raises(StoreError, match="no field"):
        await store.calls.update(call_id, secret="x")  # type: ignore[call-arg]
    with pytest.raises(NotFound):
        await store.calls.get("c_missing")


async def test_a_sip_call_keeps_its_transport_call_id_and_media(store: Store) -> None:
    ws_call = await a_call(store)
    assert (await store.calls.get(ws_call)).transport == "ws"
    contact = await store.calls.contact_id("+15557654321")
    await store.calls.create(
        NewCall(
            id="c_sip",
            number="+15550100",
            contact_id=contact,
            flow_id="consent",
            flow_version="v1",
            codec="pcma",
            sample_rate=8000,
            started_at=now_iso(),
            transport="sip",
            sip_call_id="1-4242@192.0.2.10",
        )
    )
    await store.calls.update("c_sip", media={"packets_received": 250, "peer_jitter_ms": 1.5})
    call = await store.calls.get("c_sip")
    assert (call.transport, call.sip_call_id) == ("sip", "1-4242@192.0.2.10")
    assert call.media == {"packets_received": 250, "peer_jitter_ms": 1.5}


async def test_calls_page_newest_first_by_agent_with_a_cursor(store: Store) -> None:
    ids = [await a_call(store, started_at=f"2026-01-0{i}T00:00:00.000Z") for i in range(1, 6)]
    for call_id in ids[:4]:
        await store.calls.update(call_id, agent_id="u_ana")
    page, nxt = await store.calls.page(agent_id="u_ana", limit=3)
    assert [c.id for c in page] == [ids[3], ids[2], ids[1]]
    assert nxt is not None
    rest, last = await store.calls.page(agent_id="u_ana", cursor=nxt, limit=3)
    assert ([c.id for c in rest], last) == ([ids[0]], None)
    window = await store.calls.in_window(
        "2026-01-02T00:00:00.000Z", "2026-01-05T00:00:00.000Z", contact="+15557654321"
    )
    assert [c.id for c in window] == ids[1:4]
    assert await store.calls.close_unended("2026-02-01T00:00:00.000Z") == 5
    assert (await store.calls.get(ids[0])).end_reason == "error"


async def test_events_page_in_order_and_consents_keep_their_evidence(store: Store) -> None:
    call_id = await a_call(store)
    await store.calls.add_events(
        [
            (call_id, f"2026-01-01T00:00:0{i}.000Z", "dtmf", json.dumps({"digit": str(i)}))
            for i in range(5)
        ]
    )
    page, nxt = await store.calls.events_page(call_id, limit=2)
    assert [e.public() for e in page] == [
        {"at": "2026-01-01T00:00:00.000Z", "type": "dtmf", "digit": "0"},
        {"at": "2026-01-01T00:00:01.000Z", "type": "dtmf", "digit": "1"},
    ]
    assert nxt is not None
    more, _ = await store.calls.events_page(call_id, after=nxt, limit=10)
    assert [e.data["digit"] for e in more] == ["2", "3", "4"]
    assert len(await store.calls.events(call_id)) == 5
    evidence = {"menu": {"prompt": "menu", "sha256": "ab"}, "notices": []}
    consent_id = await store.calls.add_consent(
        NewConsent(
            call_id, None, "+15550100", "consent", "v1", "opt_in", "granted", "1", None, evidence
        )
    )
    [kept] = await store.calls.consents(call_id)
    assert (kept.id, kept.decision, kept.evidence) == (consent_id, "granted", evidence)
    assert await store.calls.consents_of([call_id]) == [kept]
    assert await store.calls.consents_of([]) == []


async def test_a_recording_round_trips_with_its_call_and_json_decoded(store: Store) -> None:
    call_id = await a_call(store)
    await store.calls.update(call_id, agent_id="u_ana", agent_name="Ana", line="recorded")
    rec_id = await a_recording(store, call_id, finish=False)
    assert [r.id for r in await store.recordings.unfinished()] == [rec_id]
    pauses = [{"start_s": 0.5, "end_s": 1.0, "reason": "api"}]
    await store.recordings.finish(
        rec_id, status="complete", ended_at="2026-01-01T00:00:02.000Z", pauses=pauses, gaps=[]
    )
    rec = await store.recordings.get(rec_id)
    assert isinstance(rec, RecordingRow)
    assert (rec.status, rec.pauses, rec.gaps, rec.tags) == ("complete", pauses, [], [])
    assert (rec.agent_name, rec.contact, rec.number, rec.line) == (
        "Ana",
        "+15557654321",
        "+15550100",
        "recorded",
    )
    assert await store.recordings.unfinished() == []
    with pytest.raises(StoreError, match="no field"):
        await store.recordings.finish(rec_id, owner="x")  # type: ignore[call-arg]


async def test_qa_fields_notes_and_deletion(store: Store) -> None:
    rec_id = await a_recording(store, await a_call(store))
    await store.recordings.annotate(rec_id, score=80, tags=["a", "b"])
    assert ((r := await store.recordings.get(rec_id)).score, r.tags) == (80, ["a", "b"])
    await store.recordings.annotate(rec_id, clear_score=True)
    assert (await store.recordings.get(rec_id)).score is None
    note = await store.recordings.add_note(rec_id, "u_sam", "good call")
    assert await store.recordings.notes(rec_id) == [note]
    assert await store.recordings.notes_of([rec_id, "r_other"]) == [note]
    path = store.recording_path((await store.recordings.get(rec_id)).path)
    assert path.is_file()
    await store.recordings.delete(rec_id)
    assert not path.exists()
    with pytest.raises(NotFound):
        await store.recordings.get(rec_id)
    assert await store.recordings.notes(rec_id) == []  # notes go with their recording


async def test_recordings_page_filters_and_never_shows_one_being_written(store: Store) -> None:
    mine, other = await a_call(store), await a_call(store, caller="+15557770000")
    await store.calls.update(mine, agent_id="u_ana")
    done = [
        await a_recording(store, mine, started_at=f"2026-01-0{i}T00:00:00.000Z") for i in (1, 2)
    ]
    await a_recording(store, mine, finish=False)
    theirs = await a_recording(store, other, started_at="2026-01-03T00:00:00.000Z")
    items, nxt = await store.recordings.page(agent_id="u_ana")
    assert ([r.id for r in items], nxt) == ([done[1], done[0]], None)
    first, cursor = await store.recordings.page(limit=1)
    assert [r.id for r in first] == [theirs]
    assert cursor is not None
    assert [r.id for r in (await store.recordings.page(contact="+15557770000"))[0]] == [theirs]
    since = await store.recordings.page(
        since="2026-01-02T00:00:00.000Z", until="2026-01-03T00:00:00.000Z"
    )
    assert [r.id for r in since[0]] == [done[1]]
    assert [r.id for r in await store.recordings.finished_of([mine])] == done
    assert len(await store.recordings.for_call(mine)) == 3


async def test_expiries_follow_a_number_and_paths_stay_inside_the_folder(store: Store) -> None:
    rec_id = await a_recording(store, await a_call(store), started_at="2026-01-01T00:00:00.000Z")
    started = await store.recordings.started_of_number("+15550100")
    assert started == [(rec_id, "2026-01-01T00:00:00.000Z")]
    assert await store.recordings.started_of_number("+15550199") == []
    await store.recordings.set_expiries([(rec_id, "2026-02-01T00:00:00.000Z")])
    assert (await store.recordings.get(rec_id)).expires_at == "2026-02-01T00:00:00.000Z"
    for outside in ("../ivr.sqlite3", "/etc/passwd", "", "t/../.."):
        with pytest.raises(NotFound):
            store.recording_path(outside)


async def test_the_call_paths_interface_takes_mappings_and_json_text(store: Store) -> None:
    """What :class:`ivr.call.journal.CallRecords` calls, with the shapes the journal sends."""
    call_id = await a_call(store)
    await store.update_call(call_id, recording_decision=DECISION, consent_decision="granted")
    await store.add_consent(
        {
            "call_id": call_id,
            "contact_id": None,
            "number": "+15550100",
            "flow_id": "consent",
            "flow_version": "v1",
            "consent_mode": "opt_in",
            "decision": "granted",
            "digit": "1",
            "digit_at": None,
            "evidence": {"notices": ["recording"]},
        }
    )
    rec_id = "r_journal"
    await store.create_recording(
        {
            "id": rec_id,
            "call_id": call_id,
            "path": "2026/01/01/r_journal.wav",
            "status": "recording",
            "started_at": "2026-01-01T00:00:00.000Z",
            "sample_rate": 8000,
            "channels": 2,
            "format": "wav/pcm_s16le",
            "transcribe": 1,
            "expires_at": None,
        }
    )
    gaps = [{"start_s": 1.0, "end_s": 1.2, "reason": "clock_stall"}]
    await store.finish_recording(
        rec_id, status="truncated", pauses="[]", gaps=json.dumps(gaps), truncated_at_s=2.0
    )
    call, rec = await store.calls.get(call_id), await store.recordings.get(rec_id)
    assert (call.recording_decision, call.consent_decision) == (DECISION, "granted")
    assert (rec.status, rec.gaps, rec.transcribe, rec.truncated_at_s) == (
        "truncated",
        gaps,
        True,
        2.0,
    )
    assert [c.evidence for c in await store.calls.consents(call_id)] == [{"notices": ["recording"]}]
    # A truncated recording to transcribe is queued by the schema's trigger.
    job = await store.transcripts.job(rec_id)
    assert job is not None
    assert job.state == "pending"

"""Number changes and flows through the use cases: proved compliant, kept, live, audited."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.server.keys import audit_key, store_key, switchboard_key
from ivr.services import flows, numbers
from ivr.services.context import Context
from ivr.services.errors import Invalid, InvalidFlow, Missing, NonCompliant
from tests.conftest import AppFactory, consent_flow
from tests.ivr.services.conftest import Served, make_user


async def test_a_dry_run_gives_the_verdict_and_changes_nothing(served: Served) -> None:
    sb = served.ctx.live()
    seq = await served.last_seq()
    change = await numbers.change_number(
        served.ctx, served.admin, "+15550100", {"record_percent": 50}, dry_run=True
    )
    assert (change.saved, change.settings.record_percent) == (False, 50)
    assert sb.numbers["+15550100"].record_percent == 100
    assert await served.audit_since(seq) == []


async def test_a_number_change_is_kept_applied_and_audited(served: Served) -> None:
    seq = await served.last_seq()
    change = await numbers.change_number(
        served.ctx, served.admin, "+15550100", {"recording": False, "retention_days": 10}
    )
    assert change.saved
    assert served.ctx.live().numbers["+15550100"].recording is False
    [row] = [n for n in await served.ctx.store.catalog.numbers() if n.id == "+15550100"]
    assert (row.recording, row.retention_days, row.source) == (False, 10, "api")
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.outcome, entry.object_id) == ("numbers.update", "ok", "+15550100")
    assert entry.detail == {"changes": {"recording": False, "retention_days": 10}}


async def test_number_changes_are_refused_with_the_field_or_the_rules(served: Served) -> None:
    ctx, admin = served.ctx, served.admin
    with pytest.raises(Missing):
        await numbers.change_number(ctx, admin, "+15559999", {"recording": False})
    with pytest.raises(Invalid, match="may not be null") as null:
        await numbers.change_number(ctx, admin, "+15550100", {"name": None})
    assert null.value.field == "name"
    with pytest.raises(Invalid, match="no flow named 'nope'"):
        await numbers.change_number(ctx, admin, "+15550100", {"flow": "nope"})
    seq = await served.last_seq()
    # The sales flow has no consent menu: opt_in would record without consent.
    with pytest.raises(NonCompliant) as refused:
        await numbers.change_number(ctx, admin, "+15550101", {"consent_mode": "opt_in"})
    assert refused.value.problems
    assert refused.value.problems[0]["path"] == "numbers.+15550101"
    [entry] = await served.audit_since(seq)
    assert (entry.outcome, entry.detail) == ("failed", {"why": "non_compliant"})
    assert ctx.live().numbers["+15550101"].consent_mode == "notice"


async def test_transcription_needs_a_model_for_the_language(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    config_data["numbers"]["+15550101"]["language"] = "fr"
    client = await start_app(config_data)
    app = client.app
    ctx = Context(app[store_key], app[audit_key], app[switchboard_key])
    admin = await make_user(ctx, "adm@example.com", "admin")
    with pytest.raises(Invalid, match="no speech recognition model") as refused:
        await numbers.change_number(ctx, admin, "+15550101", {"transcription": True})
    assert refused.value.field == "transcription"
    [entry] = await app[audit_key].entries()
    assert entry.detail == {"why": "no_model", "language": "fr"}


async def test_a_flow_put_is_validated_proved_kept_and_live(served: Served) -> None:
    ctx, admin = served.ctx, served.admin
    with pytest.raises(Invalid, match="a flow id has") as bad_id:
        await flows.put_flow(ctx, admin, "no spaces", consent_flow())
    assert bad_id.value.field == "flow_id"
    seq = await served.last_seq()
    broken = consent_flow()
    broken["nodes"]["consent"]["options"]["1"]["next"] = "recorde"
    with pytest.raises(InvalidFlow, match="1 problem") as invalid:
        await flows.put_flow(ctx, admin, "consent", broken)
    assert invalid.value.problems == [
        {
            "path": "nodes.consent.options.1.next",
            "message": "no node named 'recorde' in flow 'consent'",
        }
    ]
    unsafe = consent_flow()
    unsafe["nodes"]["consent"]["on_timeout"] = "recorded"
    with pytest.raises(NonCompliant):
        await flows.put_flow(ctx, admin, "consent", unsafe)
    assert [e.outcome for e in await served.audit_since(seq)] == ["failed", "failed"]
    new = consent_flow(menu_timeout_s=2.0)
    flow = await flows.put_flow(ctx, admin, "consent", new)
    assert ctx.live().flows["consent"].version == flow.version
    [head] = [f for f in await ctx.store.catalog.current_flows() if f.id == "consent"]
    assert head.version == flow.version
    assert await ctx.store.catalog.source_of("flow_heads", "consent") == "api"
    last = (await served.audit_since(seq))[-1]
    assert (last.action, last.outcome, last.detail) == (
        "flows.update",
        "ok",
        {"version": flow.version},
    )


async def test_checking_a_draft_keeps_nothing_and_is_audited(served: Served) -> None:
    ctx, admin = served.ctx, served.admin
    seq = await served.last_seq()
    ok = await flows.check_flow(ctx, admin, {"id": "draft2", **consent_flow()})
    assert (ok.valid, ok.problems) == (True, [])
    assert ok.version is not None
    unsafe = consent_flow()
    unsafe["nodes"]["consent"]["on_timeout"] = "recorded"
    bad = await flows.check_flow(ctx, admin, {"id": "consent", **unsafe})  # as its numbers use it
    assert not bad.valid
    assert {p["rule"] for p in bad.problems} >= {"default_branch"}
    assert "draft2" not in ctx.live().flows
    assert [e.detail for e in await served.audit_since(seq)] == [{"valid": True}, {"valid": False}]
    with pytest.raises(Invalid, match="id: must be a string"):
        await flows.check_flow(ctx, admin, {"id": 7})

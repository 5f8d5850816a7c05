"""Numbers: change a number's settings, proved compliant first, kept and applied live.

A change is refused when a field is null, the flow does not exist, no
speech model ships for the number's language while transcription is asked
for, or the settings would break a compliance rule with the number's flow.
A dry run stops after the proof: the verdict, nothing saved. A new
``retention_days`` applies to the number's existing recordings too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ivr import privacy
from ivr.config import NumberConfig
from ivr.flows import compliance
from ivr.services.context import Context
from ivr.services.errors import Invalid, Missing, NonCompliant
from ivr.services.flows import violation_out
from ivr.speech import transcribe
from ivr.store import User


@dataclass(frozen=True, slots=True)
class NumberChange:
    """A number's settings after the change, and whether they were saved (not a dry run)."""

    number_id: str
    settings: NumberConfig
    saved: bool


async def change_number(
    ctx: Context,
    actor: User,
    number_id: str,
    changes: Mapping[str, Any],
    *,
    dry_run: bool = False,
) -> NumberChange:
    """Apply ``changes`` (field -> new value) to a number, from the next call on."""
    sb = ctx.live()
    current = sb.numbers.get(number_id)
    if current is None:
        raise Missing("no such number on this server")
    changes = dict(changes)
    for key, value in changes.items():
        if value is None:
            raise Invalid(f"{key}: may not be null", field=key)
    if "flow" in changes and changes["flow"] not in sb.flows:
        raise Invalid(f"flow: no flow named {changes['flow']!r}", field="flow")
    updated = current.model_copy(update=changes)
    if changes.get("transcription") and transcribe.model_for(updated.language) is None:
        await ctx.audited(
            actor,
            "numbers.update",
            "failed",
            object_type="number",
            object_id=number_id,
            detail={"why": "no_model", "language": updated.language},
        )
        raise Invalid(
            f"transcription: no speech recognition model for the number's language "
            f"{updated.language!r} (models ship for: {', '.join(sorted(transcribe.MODELS))}); "
            "transcription cannot be switched on",
            field="transcription",
        )
    violations = compliance.check_number(number_id, updated, sb.flows[updated.flow])
    if violations:
        await ctx.audited(
            actor,
            "numbers.update",
            "failed",
            object_type="number",
            object_id=number_id,
            detail={"why": "non_compliant"},
        )
        raise NonCompliant(
            f"with these settings the number breaks {len(violations)} rule(s)",
            problems=[violation_out(v) for v in violations],
        )
    if dry_run:
        # The verdict before saving: the settings would be accepted; nothing is changed.
        return NumberChange(number_id, updated, saved=False)
    await ctx.store.catalog.save_number(number_id, updated, source="api")
    if "retention_days" in changes:
        await privacy.apply_retention(ctx.store, number_id, updated.retention_days)
    sb.set_number(number_id, updated)
    await ctx.audited(
        actor,
        "numbers.update",
        "ok",
        object_type="number",
        object_id=number_id,
        detail={"changes": changes},
    )
    return NumberChange(number_id, updated, saved=True)

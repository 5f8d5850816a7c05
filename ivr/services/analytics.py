"""Analytics and billing as the API shows them: rates and rounding over the store's counts."""

from __future__ import annotations

from typing import Any

from ivr.store import CallTotals, Store


def _shape(t: CallTotals) -> dict[str, Any]:
    asked = t.consent_asked
    return {
        "key": t.key,
        "calls": t.calls,
        "answered": t.answered,
        "recorded": t.recorded,
        "consent_asked": t.consent_asked,
        "consent_granted": t.consent_granted,
        "consent_rate": round(t.consent_granted / asked, 4) if asked else None,
        "average_handle_time_s": (
            round(t.average_handle_s, 3) if t.average_handle_s is not None else None
        ),
    }


async def summary(store: Store, since: str | None, until: str | None) -> dict[str, Any]:
    """Calls, answered, recorded, consent rate and average handle time, overall and grouped."""
    total = _shape((await store.analytics.totals(since, until))[0])
    total.pop("key")
    by_team = [_shape(t) for t in await store.analytics.totals(since, until, by="team")]
    by_agent = [_shape(t) for t in await store.analytics.totals(since, until, by="agent")]
    return {"since": since, "until": until, **total, "by_team": by_team, "by_agent": by_agent}


async def billing(store: Store, since: str | None, until: str | None) -> dict[str, Any]:
    """Usage: call minutes, recorded minutes, storage bytes, seats."""
    usage = await store.analytics.usage(since, until)
    return {
        "since": since,
        "until": until,
        "minutes": round(usage.minutes, 4),
        "recorded_minutes": round(usage.recorded_minutes, 4),
        "storage_bytes": usage.storage_bytes,
        "seats": usage.seats,
    }

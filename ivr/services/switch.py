"""Opening a switch: the config's numbers, flows and teams, proved, with their prompts.

What ``ivr serve`` and the simulator (:mod:`ivr.simulate`) both do before
the first call: seed the store from the config and load what calls use
(:func:`ivr.services.seed.seed_and_load`), refuse a number whose language
has no speech model for its transcription, refuse any flow the compliance
proof finds breaking a caller's rights (:mod:`ivr.flows.compliance`), load
the prompts, and build the switchboard on the given clock and recorder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ivr.call.clock import MediaClock
from ivr.call.metrics import CallMetrics
from ivr.call.prompt import PromptLibrary
from ivr.call.recorder import RecorderPool
from ivr.call.switchboard import Switchboard
from ivr.config import Config
from ivr.errors import InvalidConfig, Problem
from ivr.flows import compliance
from ivr.services.seed import seed_and_load
from ivr.speech.transcribe import check_languages
from ivr.store import Store


async def open_switchboard(
    config: Config,
    store: Store,
    data_dir: Path,
    clock: MediaClock,
    recorder: RecorderPool,
    *,
    metrics: CallMetrics | None = None,
    prove: bool = True,
    tts_cache: Path | None = None,
) -> Switchboard:
    """The switchboard of ``config`` over an open ``store``; :class:`InvalidConfig` if refused.

    ``prove=False`` skips the compliance proof: only for a test that shows
    what a broken flow would do (``ivr test-flows --no-proof``). Spoken
    prompts are cached in ``tts_cache`` (default: the data folder's).
    """
    live = await seed_and_load(config, store)
    languages = check_languages(live.numbers)
    if languages:
        raise InvalidConfig(
            config.source,
            [Problem(m.split(": ", 1)[0], m.split(": ", 1)[1]) for m in languages],
        )
    violations = compliance.check_all(live.numbers, live.flows) if prove else []
    if violations:
        raise InvalidConfig(
            config.source,
            [Problem(f"numbers.{v.number}" if v.number else "flows", str(v)) for v in violations],
        )
    prompts = await asyncio.to_thread(
        PromptLibrary.load, live.prompts, tts_cache or data_dir / "cache" / "tts", config.source
    )
    return Switchboard(
        config,
        store,
        prompts,
        clock,
        recorder,
        numbers=live.numbers,
        flows=live.flows,
        teams=live.teams,
        metrics=metrics,
    )

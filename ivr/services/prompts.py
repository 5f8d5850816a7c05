"""Prompts a change needs (a flow's, a team's greeting), loaded or rendered before it applies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from ivr.call.prompt import PromptLibrary
from ivr.config import PromptSource, prompt_source
from ivr.errors import IvrError
from ivr.services.context import Context
from ivr.services.errors import Invalid

PromptSpec = str | PromptSource
"""A prompt file id, or a source a flow names (a file or text to render)."""


def tts_cache(ctx: Context) -> Path:
    """Where rendered prompts are kept, in the data folder."""
    return ctx.store.data_dir / "cache" / "tts"


async def ensure_prompts(ctx: Context, specs: Mapping[str, PromptSpec]) -> None:
    """Load (or render) the prompts a change needs; :class:`Invalid` names the one that fails.

    ``specs`` maps a field (what the client named) to its prompt.
    """
    sb = ctx.live()
    sources = {}
    for field, spec in specs.items():
        src = spec if not isinstance(spec, str) else prompt_source(spec, sb.config.prompts_dir)
        if src is None:
            raise Invalid(f"{field}: no prompt file {spec}.wav", field=field)
        if src.id not in sb.prompts:
            sources[src.id] = src
    if not sources:
        return
    try:
        lib = await asyncio.to_thread(PromptLibrary.load, sources, tts_cache(ctx), "api")
    except IvrError as exc:
        raise Invalid(f"prompt: {exc}") from None
    for pid in lib.ids():
        sb.prompts.add(lib.get(pid))

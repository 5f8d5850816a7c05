"""Prompts as a caller hears them: the one playing now, frame by frame, and when each played.

A :class:`Playback` is one prompt being played, as its wire frames for the
caller's codec (encoded once per prompt and codec,
:meth:`ivr.call.prompt.Prompt.wire_frames`), looped for hold audio.

A call's :class:`PromptPlayer` starts and stops prompts, tells the caller
(``prompt`` ``start`` and ``end``, docs/protocol.md) and the call's timeline,
sends the media clock's tick its frame, and keeps, per node, when its prompt
was heard and whether it was cut short. That is the consent evidence's part
about prompts: which prompt, the SHA-256 of exactly the samples played at
the caller's rate, from when to when (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ivr.call.leg import Leg
from ivr.call.prompt import Prompt, PromptLibrary
from ivr.stamp import now_iso

EventSink = Callable[[str, dict[str, Any]], None]
"""Where a call's timeline events go: ``(kind, data)``."""


class Playback:
    """A prompt being played to the caller, frame by frame."""

    __slots__ = ("frames", "index", "loop", "node", "prompt", "started_at")

    def __init__(self, prompt: Prompt, frames: list[bytes], node: str, loop: bool) -> None:
        self.prompt = prompt
        self.frames = frames
        self.node = node
        self.loop = loop
        self.index = 0
        self.started_at = now_iso()

    def next_frame(self) -> tuple[bytes, bool]:
        """The next wire frame, and whether the prompt has now played to its end."""
        frame = self.frames[self.index]
        self.index += 1
        if self.index == len(self.frames):
            if self.loop:
                self.index = 0
                return frame, False
            return frame, True
        return frame, False


class PromptPlayer:
    """The prompts of one call: what plays now, and what each node's prompt was heard as."""

    __slots__ = ("_caller", "_event", "_prompts", "played", "playing")

    def __init__(self, caller: Leg, prompts: PromptLibrary, event: EventSink) -> None:
        self._caller = caller
        self._prompts = prompts
        self._event = event
        self.playing: Playback | None = None
        self.played: dict[str, dict[str, Any]] = {}
        """Per node, the evidence of its prompt's last playing (see the module docstring)."""

    def play(self, prompt_id: str, node: str, loop: bool) -> None:
        """Start ``prompt_id`` for ``node`` from its first frame (it replaces any playing)."""
        prompt = self._prompts.get(prompt_id)
        self.playing = Playback(prompt, prompt.wire_frames(self._caller.codec), node, loop)
        self._caller.send_message(
            {"type": "prompt", "event": "start", "prompt": prompt_id, "node": node}
        )
        self._event("prompt_start", {"prompt": prompt_id, "node": node})

    def stop(self, node: str) -> None:
        """Cut ``node``'s prompt short, if it is the one playing (barge-in, an answer)."""
        pb = self.playing
        if pb is not None and pb.node == node:
            self.playing = None
            self._ended(pb, interrupted=True)

    def send_frame(self) -> str | None:
        """Send the caller this tick's frame: the prompt's next, or silence when none plays.

        Returns the node whose prompt this frame ended (played to its end);
        the caller has its frame before it hears that the prompt ended.
        """
        pb = self.playing
        if pb is None:
            self._caller.send_wire(self._caller.silence_wire)
            return None
        frame, done = pb.next_frame()
        self._caller.send_wire(frame)
        if not done:
            return None
        self.playing = None
        self._ended(pb, interrupted=False)
        return pb.node

    def _ended(self, pb: Playback, *, interrupted: bool) -> None:
        self.played[pb.node] = {
            "node": pb.node,
            "prompt": pb.prompt.id,
            "sha256": pb.prompt.sha256[self._caller.sample_rate],
            "played_from": pb.started_at,
            "played_to": now_iso(),
            "interrupted": interrupted,
        }
        self._caller.send_message(
            {
                "type": "prompt",
                "event": "end",
                "prompt": pb.prompt.id,
                "node": pb.node,
                "interrupted": interrupted,
            }
        )
        self._event(
            "prompt_end", {"prompt": pb.prompt.id, "node": pb.node, "interrupted": interrupted}
        )

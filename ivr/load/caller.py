"""Virtual callers and virtual agents: sans-I/O state machines driven by the runner.

A :class:`VirtualCaller` plays one :class:`~ivr.load.scenario.Behaviour`
through one call. It is fed what the connection delivers (``on_text``,
``on_binary``, ``on_close``, each stamped with the arrival time) and is
ticked every 20 ms by its process's one scheduler (``tick`` returns the
frame to send, if any). It never sleeps or reads a clock; it writes to its
connection only through ``send_text`` / ``send_binary``. So it is exercised
in tests with a fake connection and made-up times.

What it measures (:class:`CallResult`): set-up (connect to ``answered``, and
to the first audio frame), each digit's response time (sent, to the first
audio frame after the message that answers it), prompt start times, every
frame's lateness against the call's 20 ms schedule, frames received while
recorded, and the server's ``stats``. Its outcome says whether the call went
as the behaviour expects; the recording itself is checked after the run
(:mod:`ivr.load.verify`).

Why one module of about 550 lines: the caller and the agent are the two ends
of one call and share its message handling and measurements; split, each
half would import the other's internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ivr.load.audio import TalkSignal, WireCodec
from ivr.load.scenario import Agents, Behaviour, CallPlan, ScenarioSpec

FRAME_S = 0.02
CLOSE_WAIT_S = 10.0  # after 'hangup', how long the server may take to close


class Sender(Protocol):
    def send_text(self, text: str) -> None: ...

    def send_binary(self, data: bytes) -> None: ...

    def close(self, code: int = 1000) -> None: ...


class Sink(Protocol):
    """Where a process's callers report (the worker's aggregates).

    ``lateness_ms`` holds the frame lateness values of the current second of
    the run, in arrival order: a frame's lateness costs one ``append``. The
    scheduler swaps the list every second and adds the finished one to that
    second's histogram in one go (:meth:`Histogram.add_all`, which gives
    exactly what an ``add`` per frame would).
    """

    lateness_ms: list[float]

    def sample(self, metric: str, value_ms: float) -> None: ...


@dataclass(slots=True)
class CallResult:
    """Everything one call measured; times in ms unless named ``_s``."""

    index: int
    behaviour: str
    kind: str
    to: str
    caller_id: str
    seed: int
    expect_recorded: bool | None
    call_id: str | None = None
    outcome: str = "running"
    detail: str = ""
    started_s: float = 0.0
    ended_s: float | None = None
    answered_ms: float | None = None
    first_frame_ms: float | None = None
    first_prompt_ms: float | None = None
    ring_ms: float | None = None
    dtmf_ms: list[float] = field(default_factory=list)
    digits: str = ""
    prompts: list[list[Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    line: str | None = None
    connected: bool = False
    recording_seen: bool = False
    recording_frames: int | None = None
    hangup_reason: str | None = None
    hung_up_by_caller: bool = False
    stats: dict[str, Any] | None = None
    frames_received: int = 0
    talk_frames: int = 0
    lateness_max_ms: float = 0.0
    close_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def frames_missing(self) -> int:
        if not self.stats:
            return 0
        return max(0, int(self.stats.get("frames_sent", 0)) - self.frames_received)


class VirtualCaller:
    """One call, placed and driven according to its behaviour."""

    def __init__(
        self,
        plan: CallPlan,
        behaviour: Behaviour,
        spec: ScenarioSpec,
        codec: WireCodec,
        talk: TalkSignal,
        tones: dict[str, list[bytes]] | None,
        sink: Sink,
        run_start: float,
    ) -> None:
        self.plan = plan
        self.behaviour = behaviour
        self.spec = spec
        self.codec = codec
        self.talk = talk
        self.tones = tones  # in-band DTMF frames per digit, or None for messages
        self.sink = sink
        self.run_start = run_start
        self.silence = codec.encode(_zeros(codec))
        self.result = CallResult(
            index=plan.index,
            behaviour=plan.behaviour,
            kind=behaviour.kind,
            to=plan.to,
            caller_id=plan.caller_id,
            seed=plan.seed,
            expect_recorded=behaviour.recorded,
        )
        self.conn: Sender | None = None
        self.phase = "new"  # new, dialled, up, hanging_up, ended, closed
        self.finished = False
        self._connect_at = 0.0
        self._answered_at = 0.0
        self._ringing_at: float | None = None
        self._deadline = 0.0
        self._anchor = 0.0
        self._press_at: float | None = None
        self._presses = 0
        self._hangup_at: float | None = None
        self._tone: list[bytes] = []
        self._tone_starts = False
        self._digit_at: float | None = None
        self._answer_seen = False
        self._talking = False
        self._talk_total = 0
        self._tail_left = 0
        self._talk_until: float | None = None
        self._frame = talk.frame
        # The call is just talking (up, no digit to press or play, no hang-up or agent
        # wait pending): tick's fast path may run. Set by _tick, cleared by whatever
        # can change any of that (every message, closing, failing, hanging up).
        self._steady = False
        self._recording = False
        self._rec_frames = 0
        self._ended_at: float | None = None

    # -- placing the call --------------------------------------------------------

    def connecting(self, now: float) -> None:
        """The runner starts to open the WebSocket."""
        self._connect_at = now
        self._deadline = now + self.spec.call_timeout_s
        self.result.started_s = now - self.run_start

    def attach(self, conn: Sender, now: float) -> None:
        """The WebSocket is open: dial."""
        self.conn = conn
        self.phase = "dialled"
        conn.send_text(
            json.dumps(
                {
                    "type": "dial",
                    "to": self.plan.to,
                    "from": self.plan.caller_id,
                    "codec": self.spec.codec,
                    "rate": self.spec.rate,
                    "client_ref": f"load-{self.spec.name}-{self.plan.index}",
                }
            )
        )

    def fail(self, outcome: str, detail: str, now: float) -> None:
        """The call could not be placed or went wrong outside the protocol."""
        self._steady = False
        if self.result.outcome == "running":
            self.result.outcome = outcome
            self.result.detail = detail
        self._finish(now)

    # -- what the server sends ---------------------------------------------------

    def on_text(self, text: str, now: float) -> None:
        self._steady = False
        try:
            m = json.loads(text)
            kind = m["type"]
        except (ValueError, KeyError, TypeError):
            self.result.errors.append("bad_message")
            return
        r = self.result
        if self._digit_at is not None and kind in ("prompt", "ringing", "connected", "hangup"):
            self._answer_seen = True
        if kind == "answered":
            self._answered(m, now)
        elif kind == "prompt":
            at = round((now - self._answered_at) * 1000, 3)
            r.prompts.append(
                [m.get("node"), m.get("prompt"), m.get("event"), at, m.get("interrupted")]
            )
            if m.get("event") == "start":
                if r.first_prompt_ms is None:
                    r.first_prompt_ms = at
                if m.get("node") == self.spec.menu_node:
                    self._menu_started(now)
        elif kind == "recording":
            if m.get("state") == "on":
                r.recording_seen = True
                self._recording = True
                self._rec_frames = 0
            elif self._recording:
                self._recording = False
                r.recording_frames = (r.recording_frames or 0) + self._rec_frames
        elif kind == "ringing":
            self._ringing_at = now
        elif kind == "connected":
            self._connected(m, now)
        elif kind == "hangup":
            self._server_hangup(m, now)
        elif kind == "error":
            r.errors.append(str(m.get("code")))
            if self.phase == "dialled":
                # The dial was refused (bad_codec, busy, unknown_number...): the server
                # waits for another; this caller has none to give.
                self._give_up(f"error_{m.get('code')}", str(m.get("message", "")), now)

    def on_binary(self, data: bytes, now: float) -> None:
        # This runs for every frame of every call: one append records the lateness.
        r = self.result
        k = r.frames_received
        r.frames_received = k + 1
        scheduled = now - k * FRAME_S
        if k == 0:
            self._anchor = scheduled
            r.first_frame_ms = (now - self._connect_at) * 1000
            late = 0.0
        elif scheduled < self._anchor:
            self._anchor = scheduled
            late = 0.0
        else:
            late = (scheduled - self._anchor) * 1000
            if late > r.lateness_max_ms:
                r.lateness_max_ms = late
        self.sink.lateness_ms.append(late)
        if self._answer_seen and self._digit_at is not None:
            ms = (now - self._digit_at) * 1000
            r.dtmf_ms.append(ms)
            self.sink.sample("dtmf_response_ms", ms)
            self._digit_at = None
            self._answer_seen = False
        if self._recording:
            self._rec_frames += 1

    def on_close(self, code: int | None, now: float) -> None:
        self._steady = False
        self.result.close_code = code
        if self.phase != "ended" and self.result.outcome == "running":
            self.result.outcome = f"closed_{code}"
            self.result.detail = f"closed with code {code} before 'hangup' (phase {self.phase})"
        self.phase = "closed"
        self._finish(now)

    # -- the 20 ms tick ------------------------------------------------------------

    def tick(self, now: float) -> bytes | None:
        """This tick's work; returns the audio frame to send, if any."""
        if self._steady and now <= self._deadline:
            # The fast path: what _tick returns while the call just talks.
            r = self.result
            k = r.talk_frames
            if k < self._talk_total:
                r.talk_frames = k + 1
                return self._frame(k)
        return self._tick(now)

    def _tick(self, now: float) -> bytes | None:
        """tick, every case."""
        phase = self.phase
        if phase != "up":
            if phase in ("dialled", "new") and now > self._deadline:
                self._give_up("timeout", "no 'answered' in time", now)
            elif phase in ("hanging_up", "ended") and now > self._deadline + CLOSE_WAIT_S:
                self._give_up("timeout", f"not closed in time (phase {phase})", now)
            return None
        if now > self._deadline:
            self._hang_up(now, "timeout", f"call still up after {self.spec.call_timeout_s} s")
            return None
        if self._hangup_at is not None and now >= self._hangup_at:
            self._hang_up(now)
            return None
        if self._press_at is not None and now >= self._press_at:
            self._press_at = None
            self._press(now)
        if self._tone:
            if self._tone_starts:  # the digit counts as sent with the tone's first frame
                self._tone_starts = False
                self._digit_at = now
                self._answer_seen = False
            return self._tone.pop(0)
        if self._talking:
            r = self.result
            if self._talk_until is not None:  # agent_hangup: talk until the agent leaves
                if now >= self._talk_until:
                    self._hang_up(now, "agent_never_hung_up", "the agent stayed on the line")
                    return None
            elif r.talk_frames >= self._talk_total:
                if self._tail_left > 0:
                    self._tail_left -= 1
                    return self.silence
                self._hang_up(now)
                return None
            frame = self._frame(r.talk_frames)
            r.talk_frames += 1
            # Up, talking, no tone playing: if nothing is pending either, only a message,
            # the end of the talk or the deadline can change what the next tick does.
            self._steady = (
                self._talk_until is None and self._hangup_at is None and self._press_at is None
            )
            return frame
        return self.silence

    # -- behaviour -------------------------------------------------------------------

    def _answered(self, m: dict[str, Any], now: float) -> None:
        r = self.result
        r.call_id = m.get("call_id")
        r.answered_ms = (now - self._connect_at) * 1000
        self.sink.sample("setup_answered_ms", r.answered_ms)
        self._answered_at = now
        self.phase = "up"
        kind = self.behaviour.kind
        if kind == "early_hangup":
            self._hangup_at = now + self.behaviour.hangup_after_s
        elif kind == "hold":
            self._start_talking(now)

    def _menu_started(self, now: float) -> None:
        b = self.behaviour
        if (
            b.kind == "invalid"
            or (b.kind in ("consent", "refuse", "agent_hangup") and not self._presses)
        ) and self._press_at is None:
            self._press_at = now + b.press_after_s

    def _press(self, now: float) -> None:
        digit = self.behaviour.digit_to_press
        if digit is None or self.conn is None:
            return
        self._presses += 1
        self.result.digits += digit
        if self.tones is not None:
            self._tone = list(self.tones[digit])
            self._tone_starts = True
            return
        self._digit_at = now
        self._answer_seen = False
        self.conn.send_text(json.dumps({"type": "dtmf", "digits": digit}))

    def _connected(self, m: dict[str, Any], now: float) -> None:
        r = self.result
        r.connected = True
        r.line = m.get("line")
        if self._ringing_at is not None:
            r.ring_ms = (now - self._ringing_at) * 1000
        self._press_at = None
        if self.behaviour.kind != "hold":
            self._start_talking(now)

    def _start_talking(self, now: float) -> None:
        self._talking = True
        talk = self.spec.talk
        self._talk_total = round(talk.seconds / FRAME_S)
        self._tail_left = round(talk.tail_ms / 20)
        if self.behaviour.kind == "agent_hangup":
            self._talk_until = now + self.behaviour.agent_wait_s

    def _hang_up(self, now: float, outcome: str | None = None, detail: str = "") -> None:
        self._steady = False
        if outcome is not None and self.result.outcome == "running":
            self.result.outcome = outcome
            self.result.detail = detail
        self.result.hung_up_by_caller = True
        self.phase = "hanging_up"
        self._talking = False
        if self.conn is not None:
            self.conn.send_text('{"type": "hangup"}')

    def _give_up(self, outcome: str, detail: str, now: float) -> None:
        self._steady = False
        if self.result.outcome == "running":
            self.result.outcome = outcome
            self.result.detail = detail
        if self.conn is not None:
            self.conn.close(1000)
        self._finish(now)

    def _server_hangup(self, m: dict[str, Any], now: float) -> None:
        r = self.result
        r.hangup_reason = m.get("reason")
        stats = m.get("stats")
        r.stats = stats if isinstance(stats, dict) else None
        if self._recording:
            self._recording = False
            r.recording_frames = (r.recording_frames or 0) + self._rec_frames
        self.phase = "ended"
        self._ended_at = now
        self._talking = False
        if r.outcome == "running":
            r.outcome, r.detail = self._judge()

    def _judge(self) -> tuple[str, str]:
        """Did the call go as the behaviour expects? ("ok", "") or (reason, detail)."""
        r, kind = self.result, self.behaviour.kind
        fatal = [
            e for e in r.errors if e in ("busy", "unknown_number", "bad_codec", "too_many_errors")
        ]
        if fatal:
            return f"error_{fatal[0]}", f"the server sent error {fatal[0]}"
        reason = r.hangup_reason
        if kind == "agent_hangup":
            if not r.connected:
                return "not_connected", f"hung up ({reason}) before an agent answered"
            if reason != "agent":
                return f"hangup_{reason}", f"expected the agent to hang up, got {reason}"
            return "ok", ""
        if reason != "caller" or not r.hung_up_by_caller:
            return f"hangup_{reason}", f"the server ended the call ({reason})"
        if kind == "early_hangup":
            if r.connected:
                return "connected", "reached an agent before hanging up early"
            return "ok", ""
        if kind != "hold" and not r.connected:
            return "not_connected", "hung up before being connected"
        return "ok", ""

    def _finish(self, now: float) -> None:
        self._steady = False
        if self.finished:
            return
        self.finished = True
        self.result.ended_s = now - self.run_start
        if self.result.outcome == "running":
            self.result.outcome = "closed_None"


def _zeros(codec: WireCodec) -> Any:
    import numpy as np

    return np.zeros(codec.samples_per_frame, dtype=np.int16)


@dataclass(slots=True)
class AgentStats:
    """What the virtual agents of one process did."""

    signed_in: int = 0
    offers: int = 0
    answered: int = 0
    hung_up: int = 0
    errors: list[str] = field(default_factory=list)


class VirtualAgent:
    """A person on ``/v1/agent``: answers offers after a delay, hangs up after a while."""

    def __init__(self, spec: Agents, token: str, stats: AgentStats, codec: WireCodec) -> None:
        self.spec = spec
        self.token = token
        self.stats = stats
        self.silence = codec.encode(_zeros(codec))
        self.conn: Sender | None = None
        self.ready = False
        self.closed = False
        self.on_change: Callable[[], None] | None = None  # signed in, or closed
        self._offer: str | None = None
        self._answer_at: float | None = None
        self._in_call = False
        self._hangup_at: float | None = None

    def attach(self, conn: Sender, now: float) -> None:
        self.conn = conn
        conn.send_text(json.dumps({"type": "login", "token": self.token}))

    def on_text(self, text: str, now: float) -> None:
        m = json.loads(text)
        kind = m.get("type")
        conn = self.conn
        assert conn is not None
        if kind == "logged_in":
            if self.spec.team not in m.get("teams", []):
                self.stats.errors.append(f"not in team {self.spec.team}")
                conn.close(1000)
                return
            self.stats.signed_in += 1
            self.ready = True
            conn.send_text('{"type": "ready"}')
            if self.on_change is not None:
                self.on_change()
        elif kind == "offer":
            self.stats.offers += 1
            self._offer = m.get("call_id")
            self._answer_at = now + self.spec.answer_after_s
        elif kind == "answered":
            self.stats.answered += 1
            self._in_call = True
            self._answer_at = None
            self._hangup_at = now + self.spec.hangup_after_s
        elif kind == "hangup":
            self._in_call = False
            self._offer = None
            self._answer_at = None
            self._hangup_at = None
        elif kind == "error":
            self.stats.errors.append(str(m.get("code")))

    def on_binary(self, data: bytes, now: float) -> None:
        pass

    def on_close(self, code: int | None, now: float) -> None:
        self.closed = True
        self.ready = False
        if self.on_change is not None:
            self.on_change()

    def tick(self, now: float) -> bytes | None:
        conn = self.conn
        if conn is None:
            return None
        if self._answer_at is not None and now >= self._answer_at and self._offer is not None:
            self._answer_at = None
            conn.send_text(json.dumps({"type": "answer", "call_id": self._offer}))
        if not self._in_call:
            return None
        if self._hangup_at is not None and now >= self._hangup_at:
            self._hangup_at = None
            self._in_call = False
            self.stats.hung_up += 1
            conn.send_text('{"type": "hangup"}')
            return None
        return self.silence

"""The whole switch on a virtual clock, with callers in memory: :class:`Switch` and :class:`Call`.

A :class:`Switch` is the softswitch of ``ivr serve`` without its sockets:
the real config (proved by the compliance check), store (SQLite, in a
folder of its own), prompts, switchboard and bots, media clock, in-band
DTMF detector, recorder and consent evidence, on a
:class:`ivr.simulate.loop.VirtualClockLoop`. A call is placed the way the
WebSocket endpoint places one (:func:`ivr.transport.placement.place_call`),
with a :class:`Call` as its transport: what the switch sends the caller
(``answered``, prompts, ``connected``, the indicators, ``hangup``) arrives
there as it would over a socket, and the caller's audio goes into its leg
one frame every 20 ms, as a phone's would.

The API is synchronous: each verb runs the virtual clock until what it
waits for has happened (a prompt starts, the call is connected, it ends),
so a test reads like the call::

    with Switch.open(config) as switch:
        call = switch.dial("+15550100")
        call.wait_prompt("consent")
        call.press("1")
        call.wait_connected()
        call.talk(2)
        call.hangup()
        assert call.recorded and call.line == "recorded"

Ids and timestamps come from the seed and the virtual clock
(:func:`ivr.stamp.use_sources`, in a context of its own), so a run is the
same every time and nothing else in the process is touched.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import shutil
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from ivr import stamp
from ivr.call.clock import MediaClock
from ivr.call.leg import Leg
from ivr.call.recorder import RecorderPool
from ivr.call.seat import PersonSeat
from ivr.call.session import CallSession
from ivr.call.switchboard import Switchboard
from ivr.config import Config
from ivr.flows import Step
from ivr.load.audio import dtmf_frames, talk_pcm
from ivr.privacy.redact import mask_number
from ivr.services.switch import open_switchboard
from ivr.simulate.loop import VirtualClockLoop
from ivr.store import Store
from ivr.transport.placement import place_call
from ivr.transport.protocol import Dial
from media.frame import PTIME_MS, codec, silence

T = TypeVar("T")

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time 0: what the simulated calls' timestamps count from."""
FRAME_S = PTIME_MS / 1000
DEFAULT_CALLER = "+15555550100"
DEFAULT_WAIT_S = 120.0
"""How long a verb waits (virtual seconds) for what it waits for before it fails."""
TONE_MS = 100
TONE_DBM0 = -10.0


class FlowTestFailure(AssertionError):
    """A call did not do what a flow test said it would; the message names the path it took."""


@dataclass
class Outcome:
    """What a call left behind once it ended and its records were saved."""

    line: str | None
    reason: str | None
    recorded: bool
    recordings: list[dict[str, Any]]
    consent: str | None
    decision: dict[str, Any] | None
    stats: dict[str, Any] | None
    """The caller leg's counters as the switch saved them (frames sent, unsent, late...)."""


class Call:
    """One simulated caller: the transport of its leg, and the verbs a test uses."""

    def __init__(self, switch: Switch, number: str, caller: str, sample_rate: int) -> None:
        self.switch = switch
        self.number = number
        self.caller = caller
        self.codec = codec("pcm_s16le", sample_rate)
        self.session: CallSession | None = None
        self.messages: list[dict[str, Any]] = []
        """Every message the switch sent this caller, in order."""
        self.frames_heard = 0
        self.reading = True
        """False: the caller stops reading (its audio is refused, as a full socket's)."""
        self.close_code: int | None = None
        self.ended = asyncio.Event()
        self._outbox: deque[bytes] = deque()
        self._silence = self.codec.encode(silence(sample_rate))
        self._talk_k = 0
        self._cursor = 0  # prompts already waited for
        self._outcome: Outcome | None = None
        self._mouth: asyncio.Task[None] | None = None
        self.loss_percent = 0.0
        """Of the caller's frames, how many are lost on the way in (a fault)."""
        self._rng = random.Random(f"{switch.seed}:{len(switch.calls)}")

    # -- the leg's transport (ivr.call.leg.Transport) -------------------------------

    def send_audio(self, payload: bytes) -> bool:
        if not self.reading:
            return False
        self.frames_heard += 1
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "hangup":
            self.ended.set()
        if self.reading:
            self.messages.append(message)

    def close(self, code: int) -> None:
        self.close_code = code
        self.ended.set()

    # -- what the caller heard --------------------------------------------------------

    @property
    def id(self) -> str:
        return self.session.id if self.session is not None else ""

    @property
    def prompts(self) -> list[str]:
        """The nodes whose prompts started playing to this caller, in order."""
        return [m["node"] for m in self.messages if m["type"] == "prompt" and m["event"] == "start"]

    @property
    def path(self) -> list[Step]:
        """Every branch the call took (the engine's own list)."""
        return list(self.session.flow.path) if self.session is not None else []

    @property
    def connected_to(self) -> str | None:
        """The agent (a bot's name) the call was bridged to, if any."""
        for m in self.messages:
            if m["type"] == "connected":
                return str(m["agent"])
        return None

    def describe_path(self) -> str:
        """The path so far, as a failure message shows it."""
        steps = [s.describe() for s in self.path]
        start = self.session.flow_def.start if self.session is not None else "?"
        return " ; ".join(steps) if steps else f"(still at {start})"

    def _fail(self, what: str) -> FlowTestFailure:
        return FlowTestFailure(
            f"call to {self.number}: {what}; path taken: {self.describe_path()}; "
            f"prompts heard: {', '.join(self.prompts) or 'none'}"
        )

    # -- the verbs ----------------------------------------------------------------------

    def wait_prompt(self, node: str, within_s: float = DEFAULT_WAIT_S) -> None:
        """Run until node ``node``'s prompt starts playing (one not waited for before)."""

        def found() -> bool:
            heard = self.prompts
            for i in range(self._cursor, len(heard)):
                if heard[i] == node:
                    self._cursor = i + 1
                    return True
            return False

        self.switch.run_until(found, within_s, self, f"the prompt of node {node!r}")

    def wait_connected(self, within_s: float = DEFAULT_WAIT_S) -> None:
        """Run until the call is bridged to an agent."""
        self.switch.run_until(
            lambda: self.connected_to is not None, within_s, self, "an agent to answer"
        )

    def wait_end(self, within_s: float = DEFAULT_WAIT_S) -> None:
        """Run until the switch ends the call (a goodbye, nobody answering, an error)."""
        self.switch.run_until(self.ended.is_set, within_s, None, "the call to end")
        self.switch.finish(self)

    def press(self, digits: str, *, inband: bool = False) -> None:
        """Press keys: as ``dtmf`` messages, or as in-band tones in the caller's audio."""
        if self.ended.is_set():
            raise self._fail(f"pressed {digits!r} after the call ended")
        if inband:
            for digit in digits:
                self._outbox.extend(dtmf_frames(self.codec, digit, TONE_MS, TONE_DBM0))
            self.switch.run_for(FRAME_S * (len(self._outbox) + 4))
        else:
            session = self.session
            assert session is not None
            for digit in digits:
                self.switch.do(lambda d=digit: session.digits(d))  # type: ignore[misc]
                self.switch.run_for(FRAME_S * 5)

    def talk(self, seconds: float) -> None:
        """Speak for ``seconds`` (the load runner's talk signal), then go on."""
        n = round(seconds / FRAME_S)
        for _ in range(n):
            self._talk_k += 1
            self._outbox.append(
                self.codec.encode(talk_pcm(7, self.codec.sample_rate, self._talk_k))
            )
        self.switch.run_for(n * FRAME_S)

    def silence(self, seconds: float) -> None:
        """Stay silent (and press nothing) for ``seconds``."""
        self.switch.run_for(seconds)

    # -- faults ------------------------------------------------------------------------

    def stop_reading(self) -> None:
        """From now on the caller reads nothing: the switch's audio and messages go unread."""
        self.reading = False

    def lose_frames(self, percent: float) -> None:
        """From now on, ``percent`` of the caller's frames are lost on the way in."""
        self.loss_percent = percent

    def hangup(self) -> Outcome:
        """Hang up, and wait until the call's records are saved."""
        session = self.session
        if session is not None and not self.ended.is_set():
            self.switch.do(session.caller_hangup)
        return self.switch.finish(self)

    # -- after the end --------------------------------------------------------------------

    @property
    def outcome(self) -> Outcome:
        if self._outcome is None:
            if not self.ended.is_set():
                raise self._fail("the call has not ended yet (hang up or wait for its end first)")
            self._outcome = self.switch.finish(self)
        return self._outcome

    @property
    def line(self) -> str | None:
        return self.outcome.line

    @property
    def recorded(self) -> bool:
        return self.outcome.recorded

    @property
    def consent(self) -> str | None:
        return self.outcome.consent

    @property
    def decision(self) -> dict[str, Any] | None:
        return self.outcome.decision

    @property
    def reason(self) -> str | None:
        return self.outcome.reason

    # -- inside the loop ----------------------------------------------------------------

    async def _speak(self) -> None:
        """The caller's audio: one frame every 20 ms, silence when there is nothing to say."""
        loop = asyncio.get_running_loop()
        at = loop.time()
        while not self.ended.is_set() and self.session is not None:
            if not self.session.ended:
                frame = self._outbox.popleft() if self._outbox else self._silence
                if not self.loss_percent or self._rng.random() * 100 >= self.loss_percent:
                    self.session.caller.receive_audio(frame)
            at += FRAME_S
            await asyncio.sleep(max(at - loop.time(), 0.0))


class Person:
    """A simulated person at an agent seat (``/v1/agent`` in memory): the seat's leg's transport.

    Answers every offer ``answer_after_s`` after it comes, and, when
    ``hangup_after_s`` is set, hangs up that long after answering (else the
    caller ends the call). Sends no audio: the caller hears silence from them.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, answer_after_s: float, hangup_after_s: float | None
    ) -> None:
        self.loop = loop
        self.answer_after_s = answer_after_s
        self.hangup_after_s = hangup_after_s
        self.seat: PersonSeat | None = None
        self.offers = 0
        self.calls = 0

    def send_audio(self, payload: bytes) -> bool:
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "offer":
            self.offers += 1
            self.loop.call_later(self.answer_after_s, self._answer, str(message["call_id"]))
        elif kind == "answered" and self.hangup_after_s is not None:
            self.calls += 1
            self.loop.call_later(self.hangup_after_s, self._hangup, str(message["call_id"]))
        elif kind == "answered":
            self.calls += 1

    def close(self, code: int) -> None:
        pass

    def _answer(self, call_id: str) -> None:
        seat = self.seat
        call = seat.call if seat is not None else None
        if seat is not None and isinstance(call, CallSession) and call.id == call_id:
            call.agent_answered(seat)

    def _hangup(self, call_id: str) -> None:
        seat = self.seat
        call = seat.call if seat is not None else None
        if isinstance(call, CallSession) and call.id == call_id and call.bridged:
            call.agent_hangup()


@dataclass
class Switch:
    """A softswitch on a virtual clock: :meth:`open` it, :meth:`dial`, close it."""

    config: Config
    data_dir: Path
    seed: int = 0
    loop: VirtualClockLoop = field(default_factory=VirtualClockLoop)
    store: Store | None = None
    switchboard: Switchboard | None = None
    calls: list[Call] = field(default_factory=list)
    _context: contextvars.Context = field(default_factory=contextvars.copy_context)

    @classmethod
    @contextmanager
    def open(
        cls,
        config: Config,
        *,
        seed: int = 0,
        data_dir: Path | None = None,
        tts_cache: Path | None = None,
        prove: bool = True,
    ) -> Iterator[Switch]:
        """A switch for ``config``, its store in ``data_dir`` (default: a temporary folder).

        ``prove=False`` skips the compliance proof (to show what a broken flow does).
        ``tts_cache``: where spoken prompts are kept between switches.
        """
        temp = None
        if data_dir is None:
            temp = Path(tempfile.mkdtemp(prefix="ivr-simulate-"))
            data_dir = temp
        switch = cls(config, data_dir, seed)
        try:
            switch._start(tts_cache, prove)
            yield switch
        finally:
            switch._close()
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)

    @property
    def now(self) -> float:
        """Virtual seconds since the switch opened."""
        return self.loop.time()

    def _start(self, tts_cache: Path | None, prove: bool) -> None:
        rng = random.Random(self.seed)
        loop = self.loop
        # Every task of this switch runs in this context: its stamps come from
        # the virtual clock and the seed, and no one else's do.
        self._context.run(
            stamp.use_sources,
            lambda: EPOCH + timedelta(seconds=loop.time()),
            lambda n: rng.getrandbits(8 * n).to_bytes(n, "big").hex(),
        )
        self._run(self._open(tts_cache, prove))

    async def _open(self, tts_cache: Path | None, prove: bool) -> None:
        enc = self.config.encryption
        # A throwaway switch keeps its keys in its own folder (a real one: beside it).
        keys = Path(enc.key_folder) if enc.key_folder else self.data_dir / "keys"
        store = Store(self.data_dir, inline=True, keys=keys, kms=enc.kms, seal=enc.enabled)
        await store.open()
        self.store = store
        clock = MediaClock(now=self.loop.time)
        recorder = RecorderPool(inline=True)
        self.switchboard = await open_switchboard(
            self.config,
            store,
            self.data_dir,
            clock,
            recorder,
            prove=prove,
            tts_cache=tts_cache,
        )
        clock.start()

    def _close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self._run(self._shutdown())
        finally:
            self.loop.close()

    async def _shutdown(self) -> None:
        sb = self.switchboard
        if sb is not None:
            await sb.shutdown()
            await sb.clock.stop()
            sb.recorder.shutdown()
        for call in self.calls:
            if call._mouth is not None:
                call._mouth.cancel()
        if self.store is not None:
            await self.store.close()

    def _run(self, aw: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(self.loop.create_task(aw, context=self._context))

    def do(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` on the loop (the session's verbs schedule work on it)."""

        async def inside() -> None:
            fn()

        self._run(inside())

    # -- the verbs ------------------------------------------------------------------------

    def dial(self, number: str, *, caller: str = DEFAULT_CALLER, sample_rate: int = 8000) -> Call:
        """Place a call to ``number`` from ``caller``; returns once it is answered."""
        sb = self.switchboard
        assert sb is not None
        assert self.store is not None
        config = sb.numbers.get(number)
        if config is None:
            raise FlowTestFailure(f"{number} is not a number of this config")
        call = Call(self, number, caller, sample_rate)
        dial = Dial(to=number, from_=caller, codec=call.codec, client_ref=None)
        call.session = self._run(
            place_call(sb, self.store, dial, config, call, self.loop.time(), kind="ws")
        )
        call._mouth = self.loop.create_task(call._speak(), name=f"caller-{mask_number(caller)}")
        self.calls.append(call)
        return call

    def add_person(
        self,
        team: str,
        *,
        answer_after_s: float = 1.0,
        hangup_after_s: float | None = None,
    ) -> Person:
        """Seat a simulated person of ``team``, ready for calls (a store user, no password)."""
        sb, store = self.switchboard, self.store
        assert sb is not None
        assert store is not None
        if team not in sb.teams:
            raise FlowTestFailure(f"no team {team!r} in the config")
        person = Person(self.loop, answer_after_s, hangup_after_s)
        n = len(sb.seats) + 1

        async def seat_them() -> None:
            user = await store.users.add(
                f"person-{n}@simulated.invalid", f"Person {n}", "agent", "!", [team]
            )
            seat = sb.add_person(user, Leg(codec("pcm_s16le", 8000), person), token_hash=f"sim-{n}")
            person.seat = seat
            sb.set_ready(seat, True)

        self._run(seat_them())
        return person

    def fail_store(self, seconds: float) -> None:
        """The store refuses every write for the next ``seconds`` (a failing disk)."""
        assert self.store is not None
        until = self.loop.time() + seconds
        loop = self.loop
        self.store.refuse_writes(lambda: loop.time() < until)

    def run_for(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        self._run(asyncio.sleep(seconds))

    def run_until(
        self, done: Callable[[], bool], within_s: float, call: Call | None, what: str
    ) -> None:
        """Run until ``done()``; :class:`FlowTestFailure` if ``call`` ends or time runs out."""

        async def wait() -> bool:
            end = self.loop.time() + within_s
            while not done():
                if call is not None and call.ended.is_set():
                    return False
                if self.loop.time() >= end:
                    return False
                await asyncio.sleep(FRAME_S)
            return True

        if not self._run(wait()):
            if call is not None and call.ended.is_set():
                raise call._fail(f"the call ended before {what}")
            who = call if call is not None else None
            if who is not None:
                raise who._fail(f"no {what} within {within_s:g} s")
            raise FlowTestFailure(f"no {what} within {within_s:g} s")

    def finish(self, call: Call) -> Outcome:
        """Wait until ``call`` has ended and is saved; what it left behind."""
        if call._outcome is not None:
            return call._outcome
        assert call.session is not None
        session = call.session
        self._run(_within(session.wait_finished(), DEFAULT_WAIT_S, call))
        call._outcome = self._run(self._outcome_of(session))
        return call._outcome

    async def _outcome_of(self, session: CallSession) -> Outcome:
        store = self.store
        assert store is not None
        row = await store.calls.get(session.id)
        recordings = await store.recordings.for_call(session.id)
        consents = await store.calls.consents(session.id)
        return Outcome(
            line=row.line,
            reason=row.end_reason,
            recorded=any(r.status == "complete" for r in recordings),
            recordings=[
                {"id": r.id, "status": r.status, "duration_s": r.duration_s, "sha256": r.sha256}
                for r in recordings
            ],
            consent=consents[-1].decision if consents else row.consent_decision,
            decision=row.recording_decision,
            stats=row.stats,
        )


async def _within(aw: Awaitable[None], seconds: float, call: Call) -> None:
    try:
        await asyncio.wait_for(aw, seconds)
    except TimeoutError:
        raise call._fail(f"its records were not saved within {seconds:g} s") from None

"""The switchboard's choice of seat: longest idle first, people and bots alike.

Real sessions ring a real switchboard on a manual media clock; only the
transports are fakes. Each call rings team ``desk`` (``+15550102``: press 1
in the consent menu), whose seats the tests set up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ivr.call.clock import MediaClock
from ivr.call.leg import Leg
from ivr.call.prompt import PromptLibrary
from ivr.call.recorder import RecorderPool
from ivr.call.seat import BotSeat, PersonSeat, Seat
from ivr.call.session import CallSession
from ivr.call.switchboard import Switchboard
from ivr.config import TeamConfig
from ivr.stamp import new_id
from ivr.store import NewCall, Store, User
from media.frame import codec
from tests.conftest import PROMPT_MS, build_config
from tests.ivr.call.test_session import FakeTransport, store_of, ticks

DESK = "+15550102"


@pytest.fixture
async def board(server_database: str | None, tmp_path: Path, config_data: dict[str, Any]) -> Any:
    # Support keeps a bot so that the bot greeting is loaded; desk calls never ring it.
    data = {**config_data, "teams": {"support": {"bots": 1}, "desk": {"bots": 0}}}
    data["bots"] = {**data["bots"], "answer_delay_s": 10}  # bots never answer in these tests
    config = build_config(data, tmp_path)
    store = Store(tmp_path / "data", server_database)  # IVR_TEST_SERVER_BACKEND
    await store.open()
    pool = RecorderPool()
    sb = Switchboard(
        config,
        store,
        PromptLibrary.load(config.prompts, tmp_path / "cache", "t"),
        MediaClock(),
        pool,
    )
    yield sb
    await sb.shutdown()
    pool.shutdown()
    await store.close()


def person(
    sb: Switchboard, name: str, *, ready: bool = True, expires: datetime | None = None
) -> PersonSeat:
    user = User(f"u_{name}", f"{name}@example.com", name, "agent", ("desk",))
    seat = sb.add_person(
        user, Leg(codec("pcm_s16le", 8000), FakeTransport()), token_hash=name, expires_at=expires
    )
    if ready:
        sb.set_ready(seat, True)
    return seat


async def ringing(sb: Switchboard) -> CallSession:
    """A new call that has just started to ring team desk."""
    number = sb.numbers[DESK]
    store = store_of(sb)
    contact = await store.calls.contact_id("+15557654321")
    session = CallSession(
        sb,
        call_id=new_id("c"),
        number_id=DESK,
        number=number,
        flow=sb.flows[number.flow],
        caller=Leg(codec("pcm_s16le", 8000), FakeTransport()),
        caller_number="+15557654321",
        contact_id=contact,
    )
    await store.calls.create(
        NewCall(
            id=session.id,
            number=DESK,
            contact_id=contact,
            flow_id=number.flow,
            flow_version="x",
            codec="pcm_s16le",
            sample_rate=8000,
            client_ref=None,
            started_at=session.started_at,
        )
    )
    sb.call_started(session)
    session.start()
    ticks(sb, PROMPT_MS["notice"] // 20 + 1)
    session.digits("1")
    assert session.flow.phase == "ringing"
    return session


def offered_to(seat: Seat) -> CallSession | None:
    if seat.state != "offered":
        return None
    call = seat.call
    assert isinstance(call, CallSession)
    return call


async def test_the_seat_idle_longest_is_offered_the_call_first(board: Switchboard) -> None:
    b, a, c = person(board, "b"), person(board, "a"), person(board, "c")  # ready in that order
    first, second, third = await ringing(board), await ringing(board), await ringing(board)
    assert (offered_to(b), offered_to(a), offered_to(c)) == (first, second, third)
    assert [m["call_id"] for m in b.leg.transport.messages if m["type"] == "offer"] == [first.id]  # type: ignore[union-attr]
    fourth = await ringing(board)
    assert fourth.seat is None  # every seat is taken: it waits
    assert board.waiting("desk") == 1


async def test_a_seat_whose_offer_ended_goes_to_the_back(board: Switchboard) -> None:
    a, b = person(board, "a"), person(board, "b")
    first = await ringing(board)
    assert offered_to(a) is first
    first.caller_hangup()  # the offer is withdrawn: a is idle again, since now
    assert a.state == "ready"
    assert offered_to(b) is None
    second = await ringing(board)
    assert offered_to(b) is second


async def test_a_decline_moves_the_call_on_and_never_back_while_it_rings(
    board: Switchboard,
) -> None:
    a, b = person(board, "a"), person(board, "b")
    call = await ringing(board)
    assert offered_to(a) is call
    call.agent_declined(a)
    assert offered_to(b) is call
    call.agent_declined(b)
    # Both declined, both are ready again: the call waits rather than going back.
    assert (a.state, b.state) == ("ready", "ready")
    assert call.seat is None
    assert board.waiting("desk") == 1
    c = person(board, "c")
    assert offered_to(c) is call
    # Another call may go to a seat that declined the first one.
    other = await ringing(board)
    assert offered_to(a) is other


async def test_a_seat_that_is_not_ready_is_never_offered(board: Switchboard) -> None:
    away = person(board, "away", ready=False)
    call = await ringing(board)
    assert offered_to(away) is None
    assert board.waiting("desk") == 1
    board.set_ready(away, True)
    assert offered_to(away) is call


async def test_not_ready_during_an_offer_takes_effect_when_it_ends(board: Switchboard) -> None:
    a = person(board, "a")
    call = await ringing(board)
    board.set_ready(a, False)
    assert offered_to(a) is call  # the offer stands
    call.agent_declined(a)
    assert a.state == "not_ready"
    assert offered_to(a) is None
    assert board.waiting("desk") == 1


async def test_people_and_bots_are_chosen_alike(board: Switchboard) -> None:
    early = person(board, "early")
    board.set_team("desk", TeamConfig(bots=1))  # the bot becomes ready after the person
    bot = board.seats["bot-desk-1"]
    late = person(board, "late")
    calls = [await ringing(board) for _ in range(3)]
    assert [offered_to(s) for s in (early, bot, late)] == calls


async def test_a_retired_bot_finishes_its_call_and_is_never_offered_again(
    board: Switchboard,
) -> None:
    board.set_team("desk", TeamConfig(bots=2))
    bot1, bot2 = board.seats["bot-desk-1"], board.seats["bot-desk-2"]
    first, second = await ringing(board), await ringing(board)
    assert (offered_to(bot1), offered_to(bot2)) == (first, second)
    board.set_team("desk", TeamConfig(bots=1))  # bot 2 is retired, mid-offer
    assert bot2.retired
    assert "bot-desk-2" in board.seats  # until its call is over
    second.caller_hangup()
    assert "bot-desk-2" not in board.seats
    third = await ringing(board)
    assert third.seat is None  # bot 1 is busy with the first call, bot 2 is gone
    first.caller_hangup()
    assert offered_to(bot1) is third
    # A ready bot that is retired goes at once.
    third.caller_hangup()
    board.set_team("desk", TeamConfig(bots=0))
    assert not [s for s in board.seats.values() if isinstance(s, BotSeat) and "desk" in s.teams]


async def test_an_expired_session_is_ended_instead_of_offered(board: Switchboard) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    stale = person(board, "stale", expires=past)
    fresh = person(board, "fresh", expires=datetime.now(UTC) + timedelta(hours=1))
    call = await ringing(board)
    assert offered_to(fresh) is call
    assert stale.id not in board.seats
    messages = stale.leg.transport.messages  # type: ignore[union-attr]
    assert messages[-1]["code"] == "unauthorized"
    assert "expired" in messages[-1]["message"]
    assert stale.leg.transport.closed_with == 1008  # type: ignore[union-attr]


async def test_a_ready_seat_that_joins_the_team_is_offered_its_waiting_call(
    board: Switchboard,
) -> None:
    user = User("u_late", "late@example.com", "late", "agent", ("support",))
    seat = board.add_person(user, Leg(codec("pcm_s16le", 8000), FakeTransport()), token_hash="late")
    board.set_ready(seat, True)
    call = await ringing(board)
    assert call.seat is None
    assert board.waiting("desk") == 1
    board.update_seats(User("u_late", "late@example.com", "late", "agent", ("support", "desk")))
    assert offered_to(seat) is call


async def test_a_seat_that_left_the_team_is_not_offered_its_calls(board: Switchboard) -> None:
    a, b = person(board, "a"), person(board, "b")
    board.update_seats(User("u_a", "a@example.com", "a", "agent", ("support",)))
    call = await ringing(board)
    assert offered_to(a) is None
    assert offered_to(b) is call


async def test_ready_and_not_ready_over_and_over_keeps_the_choice_and_its_memory_small(
    board: Switchboard,
) -> None:
    a, b = person(board, "a"), person(board, "b")
    for _ in range(1000):
        board.set_ready(a, False)
        board.set_ready(a, True)  # idle since now: behind b
    assert len(board._ready["desk"]) <= 2 * len(board.seats) + 64 + 1
    call = await ringing(board)
    assert offered_to(b) is call
    assert offered_to(a) is None

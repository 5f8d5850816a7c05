"""Placing a call: how every transport (WebSocket, SIP) turns an accepted call into a session.

The transport has already checked the number and the capacity. Here the
call's row is stored first (no call without its records: if the store
cannot take it, :class:`ivr.errors.StorageUnavailable` and there is no
call), then the session is built around the caller's leg, registered with
the switchboard and started: ``answered`` goes to the leg's transport and
the flow begins.
"""

from __future__ import annotations

import logging

from ivr.call.leg import Leg, Transport
from ivr.call.session import CallSession
from ivr.call.switchboard import Switchboard
from ivr.config import NumberConfig
from ivr.e164 import contact_number
from ivr.privacy.redact import mask_number
from ivr.privacy.subject import pseudonym
from ivr.stamp import new_id, now_iso
from ivr.store import CallTransport, NewCall, Store
from ivr.transport.protocol import Dial

log = logging.getLogger("ivr.call")


async def place_call(
    sb: Switchboard,
    store: Store,
    dial: Dial,
    number: NumberConfig,
    transport: Transport,
    dialled_at: float,
    *,
    kind: CallTransport = "ws",
    sip_call_id: str | None = None,
) -> CallSession:
    """Store the call's row, then start its session; ``dial.to`` is a configured number.

    ``kind`` is how the call came in (``ws``, ``sip``), shown by ``/v1/calls``
    as ``transport``, with the SIP Call-ID of a SIP call.
    """
    call_id = new_id("c")
    flow = sb.flows[number.flow]
    started_at = now_iso()
    # The call's row first: if the store cannot take it, there is no call.
    contact_id = await store.calls.contact_id(dial.from_)
    blocked = await recording_block(store, dial.from_)
    await store.calls.create(
        NewCall(
            id=call_id,
            number=dial.to,
            contact_id=contact_id,
            flow_id=flow.id,
            flow_version=flow.version,
            codec=dial.codec.name,
            sample_rate=dial.codec.sample_rate,
            client_ref=dial.client_ref,
            started_at=started_at,
            transport=kind,
            sip_call_id=sip_call_id,
            node_id=store.node_id,
        )
    )
    if blocked is None and caller_key(dial.from_) in sb.objected:
        # Erased while this call was being placed: no await from here to
        # call_started, so the erasure either sees this call or this call sees it.
        blocked = "the caller is being erased: not recorded"
    session = CallSession(
        sb,
        call_id=call_id,
        number_id=dial.to,
        number=number,
        flow=flow,
        caller=Leg(dial.codec, transport),
        caller_number=dial.from_,
        contact_id=contact_id,
        started_at=started_at,
        recording_blocked=blocked,
    )
    log.info(
        "call %s to %s from %s (%s, %s/%d)",
        call_id,
        dial.to,
        mask_number(dial.from_),
        kind,
        dial.codec.name,
        dial.codec.sample_rate,
    )
    sb.call_started(session)
    session.start(dialled_at)
    return session


def caller_key(caller: str) -> str | None:
    """The caller's number as the store keeps contacts (None: not E.164)."""
    try:
        return contact_number(caller)
    except ValueError:
        return None


async def recording_block(store: Store, caller: str) -> str | None:
    """Why this caller must not be recorded (they objected, and no Admin lifted it), or None."""
    number = caller_key(caller)
    if number is None:
        return None
    block = await store.privacy.block_of(pseudonym(store, "contact", number))
    if block is None:
        return None
    return (
        f"the caller objected to recording (erasure of {str(block['created_at'])[:10]}): "
        "not recorded until an Admin lifts the block"
    )

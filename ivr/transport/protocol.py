"""The WebSocket call protocol's messages (docs/protocol.md), parsed and checked.

Pure functions: text in, a typed message or a :class:`ProtocolError` (with
the protocol's error code) out. The WebSocket handlers
(:mod:`ivr.transport.caller`, :mod:`ivr.transport.agent`) turn errors into
``error`` messages and, past the limit, close code 1008.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ivr.e164 import DTMF_DIGITS, is_e164, shown
from ivr.errors import IvrError
from media.errors import UnsupportedCodec
from media.frame import Codec, codec

MAX_ERRORS = 50
CALLER_TYPES = ("dial", "dtmf", "hangup")
AGENT_TYPES = ("login", "ready", "not_ready", "answer", "reject", "hangup", "dtmf")


class ProtocolError(IvrError):
    """A message the server cannot take; ``code`` is docs/protocol.md's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_message(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Dial:
    to: str
    from_: str
    codec: Codec
    client_ref: str | None


@dataclass(frozen=True, slots=True)
class Dtmf:
    digits: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    codec: Codec


def parse(text: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Decode one control message and check its type against ``allowed``."""
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object")
    kind = msg.get("type")
    if kind is None:
        raise ProtocolError("missing_field", "the message has no 'type'")
    if not isinstance(kind, str) or kind not in allowed:
        raise ProtocolError(
            "unknown_type",
            f"unknown message type {str(kind)[:40]!r}; expected one of {', '.join(allowed)}",
        )
    return msg


def _field(msg: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    if name not in msg or msg[name] is None:
        if required:
            raise ProtocolError("missing_field", f"'{msg['type']}' needs the field '{name}'")
        return None
    value = msg[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("bad_field", f"'{name}' must be a {kind.__name__}")
    return value


def _codec(msg: dict[str, Any], default_rate: int | None = None) -> Codec:
    name = _field(msg, "codec", str, required=default_rate is None) or "pcm_s16le"
    rate = _field(msg, "rate", int, required=default_rate is None) or default_rate
    assert rate is not None
    try:
        return codec(name, rate)
    except UnsupportedCodec as exc:
        raise ProtocolError("bad_codec", str(exc)) from None


def parse_dial(msg: dict[str, Any]) -> Dial:
    to = _field(msg, "to", str)
    from_ = _field(msg, "from", str)
    for name, value in (("to", to), ("from", from_)):
        if not is_e164(value):
            raise ProtocolError(
                "bad_field",
                f"'{name}' must be an E.164 number like +15550100 (a + then 2 to 15 digits, "
                f"nothing else), not {shown(value)}",
            )
    ref = _field(msg, "client_ref", str, required=False)
    if ref is not None and len(ref) > 128:
        raise ProtocolError("bad_field", "'client_ref' is longer than 128 characters")
    return Dial(to, from_, _codec(msg), ref)


def parse_dtmf(msg: dict[str, Any]) -> Dtmf:
    digits = _field(msg, "digits", str)
    if not digits or len(digits) > 32 or any(d not in DTMF_DIGITS for d in digits):
        raise ProtocolError("bad_field", f"'digits' must be 1 to 32 of {DTMF_DIGITS}")
    duration = _field(msg, "duration_ms", int, required=False)
    if duration is None:
        duration = 100
    if not 20 <= duration <= 10000:
        raise ProtocolError("bad_field", "'duration_ms' must be between 20 and 10000")
    return Dtmf(digits, duration)


def parse_login(msg: dict[str, Any]) -> Login:
    token = _field(msg, "token", str)
    return Login(token, _codec(msg, default_rate=8000))


def parse_call_id(msg: dict[str, Any]) -> str:
    call_id: str = _field(msg, "call_id", str)
    return call_id

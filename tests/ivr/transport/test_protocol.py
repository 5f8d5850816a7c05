"""The protocol parser without a socket: every message type and field rule of docs/protocol.md.

Pure functions, text in and a typed message or a ProtocolError (with the
protocol's error code) out; tests/ivr/transport/test_protocol_errors.py sends
the same mistakes to a real server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ivr.errors import IvrError
from ivr.transport.protocol import (
    AGENT_TYPES,
    CALLER_TYPES,
    MAX_ERRORS,
    Dial,
    Dtmf,
    ProtocolError,
    parse,
    parse_call_id,
    parse_dial,
    parse_dtmf,
    parse_login,
)
from media.frame import codec

DIAL: dict[str, Any] = {
    "type": "dial",
    "to": "+15550100",
    "from": "+15557654321",
    "codec": "pcm_s16le",
    "rate": 8000,
}


def refused(call: Any, *args: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call(*args)
    return info.value


def test_the_endpoints_take_the_documented_types() -> None:
    assert CALLER_TYPES == ("dial", "dtmf", "hangup")
    assert set(AGENT_TYPES) == {"login", "ready", "not_ready", "answer", "reject", "hangup", "dtmf"}
    assert MAX_ERRORS == 50


def test_an_error_is_an_ivr_error_and_its_message() -> None:
    err = ProtocolError("bad_field", "why")
    assert isinstance(err, IvrError)
    assert err.as_message() == {"type": "error", "code": "bad_field", "message": "why"}


# -- any message -------------------------------------------------------------------------


@pytest.mark.parametrize("allowed", [CALLER_TYPES, AGENT_TYPES])
@pytest.mark.parametrize("kind", ["hangup", "dtmf"])
def test_a_known_type_is_parsed_on_both_endpoints(allowed: tuple[str, ...], kind: str) -> None:
    assert parse(json.dumps({"type": kind, "x": 1}), allowed) == {"type": kind, "x": 1}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('"dial"', "bad_json"),
        ("42", "bad_json"),
        ("[" * 100_000 + "]" * 100_000, "bad_json"),  # too deep for the decoder
        ("{}", "missing_field"),
        ('{"type": null}', "missing_field"),
        ('{"digits": "1"}', "missing_field"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": 7}', "unknown_type"),
        ('{"type": ["dial"]}', "unknown_type"),
        ('{"type": "login"}', "unknown_type"),  # an agent's message on /v1/call
        ('{"type": "Dial"}', "unknown_type"),
    ],
)
def test_a_message_that_is_not_one_is_refused_with_its_code(text: str, code: str) -> None:
    err = refused(parse, text, CALLER_TYPES)
    assert err.code == code
    assert err.message


def test_an_unknown_type_is_named_short_with_what_is_expected() -> None:
    err = refused(parse, json.dumps({"type": "x" * 500}), AGENT_TYPES)
    assert "x" * 40 in err.message
    assert "x" * 41 not in err.message
    assert "login, ready, not_ready, answer, reject, hangup, dtmf" in err.message
    assert refused(parse, '{"type": "dial"}', AGENT_TYPES).code == "unknown_type"


# -- dial ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rate", "size"),
    [("pcm_s16le", 8000, 320), ("pcm_s16le", 16000, 640), ("pcmu", 8000, 160), ("pcma", 8000, 160)],
)
def test_dial_takes_every_codec_of_the_table(name: str, rate: int, size: int) -> None:
    dial = parse_dial({**DIAL, "codec": name, "rate": rate})
    assert dial == Dial("+15550100", "+15557654321", codec(name, rate), None)
    assert len(dial.codec.encode(dial.codec.decode(bytes(size)))) == size


def test_dial_keeps_a_client_ref_of_up_to_128_characters() -> None:
    assert parse_dial({**DIAL, "client_ref": "r" * 128}).client_ref == "r" * 128
    assert parse_dial({**DIAL, "client_ref": None}).client_ref is None
    assert refused(parse_dial, {**DIAL, "client_ref": "r" * 129}).code == "bad_field"
    assert refused(parse_dial, {**DIAL, "client_ref": 5}).code == "bad_field"


@pytest.mark.parametrize("name", ["to", "from", "codec", "rate"])
def test_dial_needs_each_of_its_fields(name: str) -> None:
    without = {k: v for k, v in DIAL.items() if k != name}
    err = refused(parse_dial, without)
    assert (err.code, err.message) == ("missing_field", f"'dial' needs the field '{name}'")
    assert refused(parse_dial, {**DIAL, name: None}).code == "missing_field"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("to", 15550100),
        ("from", ["+15557654321"]),
        ("codec", 1),
        ("rate", "8000"),
        ("rate", 8000.0),
    ],
)
def test_a_dial_field_of_the_wrong_json_type_is_bad_field(name: str, value: object) -> None:
    err = refused(parse_dial, {**DIAL, name: value})
    assert err.code == "bad_field"
    assert f"'{name}' must be a" in err.message


def test_a_boolean_is_not_a_rate() -> None:
    assert refused(parse_dial, {**DIAL, "rate": True}).code == "bad_field"


@pytest.mark.parametrize(
    ("name", "rate"), [("opus", 8000), ("pcm_s16le", 44100), ("pcmu", 16000), ("PCMU", 8000)]
)
def test_a_codec_or_rate_outside_the_table_is_bad_codec(name: str, rate: int) -> None:
    err = refused(parse_dial, {**DIAL, "codec": name, "rate": rate})
    assert err.code == "bad_codec"


@pytest.mark.parametrize("number", ["+12", "+123456789012345", "+447700900123", "+33100000000"])
def test_an_e164_number_is_a_plus_and_2_to_15_digits(number: str) -> None:
    assert parse_dial({**DIAL, "to": number, "from": number}).to == number


@pytest.mark.parametrize(
    "number",
    [
        "15550100",  # no +
        "+1",  # one digit
        "+1234567890123456",  # sixteen
        "+05550100",  # first digit 0
        "+1 555 0100",
        "+15550100\n",  # a trailing newline
        " +15550100",
        "+15557654321 junk",
        "+1555O100",  # a letter O
        "+١٥٥٥٠١٠٠",  # digits, but not ASCII ones
        "",
    ],
)
@pytest.mark.parametrize("field", ["to", "from"])
def test_anything_else_is_bad_field_naming_the_field_and_the_value(number: str, field: str) -> None:
    err = refused(parse_dial, {**DIAL, field: number})
    assert err.code == "bad_field"
    assert err.message.startswith(f"'{field}' must be an E.164 number like +15550100")
    assert repr(number)[:20] in err.message


def test_a_long_bad_number_is_repeated_only_in_part() -> None:
    err = refused(parse_dial, {**DIAL, "from": "+1555" + "x" * 1000})
    assert "x" * 19 in err.message
    assert "x" * 25 not in err.message
    assert "(1005 characters)" in err.message


# -- dtmf ----------------------------------------------------------------------------------


def test_dtmf_digits_default_to_100_ms() -> None:
    assert parse_dtmf({"type": "dtmf", "digits": "0123456789*#ABCD"}) == Dtmf(
        "0123456789*#ABCD", 100
    )
    assert parse_dtmf({"type": "dtmf", "digits": "1", "duration_ms": None}).duration_ms == 100


@pytest.mark.parametrize("duration", [20, 100, 10000])
def test_dtmf_duration_from_20_to_10000(duration: int) -> None:
    assert parse_dtmf({"type": "dtmf", "digits": "5", "duration_ms": duration}).duration_ms == (
        duration
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"digits": ""},
        {"digits": "1" * 33},
        {"digits": "12a"},  # lower case is not a digit
        {"digits": "1 2"},
        {"digits": "E"},
        {"digits": 1},
        {"digits": "1", "duration_ms": 19},
        {"digits": "1", "duration_ms": 10001},
        {"digits": "1", "duration_ms": 100.0},
        {"digits": "1", "duration_ms": "100"},
        {"digits": "1", "duration_ms": True},
    ],
)
def test_dtmf_outside_its_rules_is_bad_field(fields: dict[str, Any]) -> None:
    assert refused(parse_dtmf, {"type": "dtmf", **fields}).code == "bad_field"


def test_dtmf_of_32_digits_is_taken() -> None:
    assert parse_dtmf({"type": "dtmf", "digits": "4" * 32}).digits == "4" * 32


def test_dtmf_needs_its_digits() -> None:
    err = refused(parse_dtmf, {"type": "dtmf"})
    assert (err.code, err.message) == ("missing_field", "'dtmf' needs the field 'digits'")


# -- the agent's messages -------------------------------------------------------------------


def test_login_defaults_to_8_khz_linear_pcm() -> None:
    login = parse_login({"type": "login", "token": "t"})
    assert (login.token, login.codec) == ("t", codec("pcm_s16le", 8000))
    assert parse_login({"type": "login", "token": "t", "codec": "pcmu"}).codec == codec(
        "pcmu", 8000
    )
    assert parse_login({"type": "login", "token": "t", "rate": 16000}).codec == codec(
        "pcm_s16le", 16000
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "missing_field"),
        ({"token": None}, "missing_field"),
        ({"token": 7}, "bad_field"),
        ({"token": "t", "codec": "pcmu", "rate": 16000}, "bad_codec"),
        ({"token": "t", "codec": "opus"}, "bad_codec"),
        ({"token": "t", "rate": "16000"}, "bad_field"),
    ],
)
def test_login_outside_its_rules(fields: dict[str, Any], code: str) -> None:
    assert refused(parse_login, {"type": "login", **fields}).code == code


@pytest.mark.parametrize("kind", ["answer", "reject"])
def test_answer_and_reject_name_the_call(kind: str) -> None:
    assert parse_call_id({"type": kind, "call_id": "c_1"}) == "c_1"
    assert refused(parse_call_id, {"type": kind}).code == "missing_field"
    assert refused(parse_call_id, {"type": kind, "call_id": 1}).code == "bad_field"

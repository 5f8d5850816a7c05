"""Our SIPp scenarios against the mini UAS: each passes where it should, fails where it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.dtmf import detect, generate_sequence
from media.g711 import ulaw_decode
from tests.sipkit import pcap, sipp
from tests.sipkit.process import LOOPBACK, free_port
from tests.sipkit.uas import MiniUas, parse_sdp

pytestmark = pytest.mark.tools("sipp")


def target(uas: MiniUas) -> str:
    return f"{LOOPBACK}:{uas.sip_port}"


def status_lines(run: sipp.SippRun) -> list[str]:
    return [m.split("\n", 1)[0].strip() for m in run.received()]


async def test_uac_pcap_offers_pcma_pcmu_and_events_then_sends_the_key_and_the_speech(
    tmp_path: Path,
) -> None:
    speech = sipp.shipped_pcap("g711a")
    async with MiniUas() as uas:
        run = await sipp.run(
            sipp.scenario("uac_pcap"), target(uas), workdir=tmp_path, service="+15550100",
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")), "audio": str(speech)},
            variables={"wait_ms": "200", "after_ms": "200", "talk_ms": "1500"},
        )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert (run.successful, run.failed) == (1, 0)
    offer = parse_sdp(uas.invites()[0].body)
    assert offer.formats == (8, 0, 101)
    assert offer.ptime == 30
    assert offer.encoding(101) == "telephone-event/8000"
    assert uas.methods() == ["INVITE", "ACK", "BYE"]
    assert {r.uri for r in uas.requests[1:]} == {f"sip:minuas@{LOOPBACK}:{uas.sip_port}"}
    assert uas.presses() == "1"
    # The speech arrives as the pcap's own 30 ms PCMA packets, in order, unchanged.
    heard = b"".join(p.payload for p in sorted(uas.audio(8), key=lambda p: p.seq))
    assert {len(p.payload) for p in uas.audio(8)} == {240}
    assert len(heard) >= 8000  # at least one of the 1.5 s
    assert heard == pcap.audio_payload(speech, 8)[: len(heard)]
    # ...with the files' own SSRCs: the source changes between the key and the speech.
    ssrcs = {p.pt: p.ssrc for p in uas.rtp}
    key_file = pcap.read_rtp(sipp.shipped_pcap("dtmf_2833_1"))
    assert ssrcs == {101: key_file[0].ssrc, 8: pcap.read_rtp(speech)[0].ssrc}


async def test_uac_cancel_cancels_while_ringing_and_acks_the_487(tmp_path: Path) -> None:
    async with MiniUas(answer_after_s=5.0) as uas:
        run = await sipp.run(sipp.scenario("uac_cancel"), target(uas), workdir=tmp_path,
                             service="+15550100")  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert uas.methods() == ["INVITE", "CANCEL", "ACK"]
    assert status_lines(run)[-2:] == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    dialog = next(iter(uas.dialogs.values()))
    assert dialog.cancelled
    assert not dialog.answered


async def test_uac_cancel_fails_when_the_call_is_answered_at_once(tmp_path: Path) -> None:
    async with MiniUas(ring=False) as uas:
        run = await sipp.run(sipp.scenario("uac_cancel"), target(uas), workdir=tmp_path,
                             service="+15550100", timeout_s=5.0)  # fmt: skip
    assert run.returncode != sipp.SUCCESS
    assert run.failed == 1


async def test_uac_hold_holds_and_resumes_by_reinvite(tmp_path: Path) -> None:
    async with MiniUas() as uas:
        run = await sipp.run(sipp.scenario("uac_hold"), target(uas), workdir=tmp_path,
                             service="+15550100", extra=["-d", "300"])  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert uas.methods() == ["INVITE", "ACK", "INVITE", "ACK", "INVITE", "ACK", "BYE"]
    reinvites = next(iter(uas.dialogs.values())).reinvites
    assert [parse_sdp(r.body).direction for r in reinvites] == ["sendonly", "sendrecv"]
    assert [r.uri for r in reinvites] == [f"sip:minuas@{LOOPBACK}:{uas.sip_port}"] * 2  # Contact
    answers = [m for m in run.received() if "\nm=audio" in m]
    assert ["a=recvonly" in a for a in answers] == [False, True, False]


async def test_uac_hold_fails_when_hold_is_not_answered_recvonly(tmp_path: Path) -> None:
    async with MiniUas(mirror=False) as uas:
        run = await sipp.run(sipp.scenario("uac_hold"), target(uas), workdir=tmp_path,
                             service="+15550100", timeout_s=5.0)  # fmt: skip
    assert run.returncode != sipp.SUCCESS
    assert "a=recvonly" in run.errors or run.failed == 1


async def test_uac_unknown_expects_404_and_acks_it(tmp_path: Path) -> None:
    async with MiniUas(numbers={"+15550100"}) as uas:
        run = await sipp.run(sipp.scenario("uac_unknown"), target(uas), workdir=tmp_path,
                             service="+15550999")  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert uas.methods() == ["INVITE", "ACK"]
    assert status_lines(run)[-1] == "SIP/2.0 404 Not Found"


async def test_uac_unknown_fails_for_a_number_that_answers(tmp_path: Path) -> None:
    async with MiniUas(numbers={"+15550100"}) as uas:
        run = await sipp.run(sipp.scenario("uac_unknown"), target(uas), workdir=tmp_path,
                             service="+15550100", timeout_s=5.0)  # fmt: skip
    assert run.returncode == sipp.SOME_FAILED
    assert "while expecting '404'" in run.errors


async def test_uac_load_places_many_calls_each_with_its_own_caller_id(tmp_path: Path) -> None:
    async with MiniUas() as uas:
        run = await sipp.run(
            sipp.scenario("uac_load"), target(uas), workdir=tmp_path, service="+15550100",
            calls=20, rate=20, limit=10,
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_2")),
                  "audio": str(sipp.shipped_pcap("g711a"))},
            variables={"wait_ms": "100", "after_ms": "100", "talk_ms": "300"},
        )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert (run.successful, run.failed) == (20, 0)
    callers = {r.header("from").split(">")[0].split(":")[1].split("@")[0] for r in uas.invites()}  # type: ignore[union-attr]
    assert callers == {f"+1555700{n}" for n in range(1, 21)}
    assert uas.methods().count("BYE") == 20
    assert len(uas.dialogs) == 20
    assert all(d.ended for d in uas.dialogs.values())
    assert len({e.ts for e in uas.events()}) == 1  # the pcap's one press, by every call
    assert uas.presses() == "2"


async def test_sipp_calls_sipp_uas_answer_which_checks_the_offer(tmp_path: Path) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "uas",
                            extra=["-rtp_echo"]) as uas:  # fmt: skip
        run = await sipp.run(
            sipp.scenario("uac_pcap"), f"{LOOPBACK}:{uas.port}", workdir=tmp_path / "uac",
            service="+15550100",
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")),
                  "audio": str(sipp.shipped_pcap("g711a"))},
            variables={"wait_ms": "100", "after_ms": "100", "talk_ms": "300"},
        )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert uas.result is not None
    assert uas.result.returncode == sipp.SUCCESS, uas.result.errors
    assert uas.result.successful == 1
    assert "a=rtpmap:101 telephone-event/8000" in uas.result.received()[0]


async def test_the_scenarios_run_over_tcp_too(tmp_path: Path) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "uas",
                            transport="t1") as uas:  # fmt: skip
        run = await sipp.run(
            sipp.scenario("uac_pcap"), f"{LOOPBACK}:{uas.port}", workdir=tmp_path / "uac",
            service="+15550100", transport="t1",
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")),
                  "audio": str(sipp.shipped_pcap("g711a"))},
            variables={"wait_ms": "100", "after_ms": "100", "talk_ms": "200"},
        )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert "TCP message received" in run.messages
    assert "Via: SIP/2.0/TCP" in run.sent()[0]
    assert uas.result is not None
    assert uas.result.returncode == sipp.SUCCESS, uas.result.errors


async def test_a_run_that_never_gets_an_answer_is_bounded(tmp_path: Path) -> None:
    # Nothing listens at the target: SIPp retransmits, then its -timeout ends it.
    run = await sipp.run(sipp.scenario("uac_unknown"), f"{LOOPBACK}:{free_port()}",
                         workdir=tmp_path, service="+15550100", timeout_s=2.0)  # fmt: skip
    assert run.returncode not in (None, sipp.SUCCESS)
    assert run.successful == 0


async def test_uac_rtpstream_streams_in_band_keys_as_pcmu(tmp_path: Path) -> None:
    silence = np.zeros(1600, np.int16)  # 200 ms, then the tone of 2 for 100 ms
    pcm = np.concatenate([silence, generate_sequence("2", 100, 200, 8000)])
    sent = sipp.write_ulaw(tmp_path, pcm.tobytes()).read_bytes()
    async with MiniUas() as uas:
        run = await sipp.run(sipp.scenario("uac_rtpstream"), target(uas), workdir=tmp_path,
                             service="+15550100",
                             variables={"wait_ms": "100", "talk_ms": "800"})  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    offer = parse_sdp(uas.invites()[0].body)
    assert (offer.formats, offer.event_pt) == ((0,), None)  # no telephone-event: in-band only
    packets = sorted(uas.audio(0), key=lambda p: p.seq)
    assert {len(p.payload) for p in packets} == {160}
    heard = b"".join(p.payload for p in packets)
    assert heard == sent  # the whole file, once, unchanged
    assert detect(ulaw_decode(np.frombuffer(heard, np.uint8)), 8000) == [("2", 1600)]
    assert uas.events() == []


async def test_serving_defaults_to_sipps_builtin_uas(tmp_path: Path) -> None:
    async with sipp.serving(workdir=tmp_path / "uas") as uas:
        run = await sipp.run(
            sipp.scenario("uac_pcap"), f"{LOOPBACK}:{uas.port}", workdir=tmp_path / "uac",
            service="100",
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")),
                  "audio": str(sipp.shipped_pcap("g711a"))},
            variables={"wait_ms": "50", "after_ms": "50", "talk_ms": "100"},
        )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors
    assert uas.result is not None
    assert "-sn" in uas.argv
    assert uas.result.returncode == sipp.SUCCESS, uas.result.output[-1000:]
    assert uas.result.successful == 1

"""Hostile SIP beside a real SIPp call: every bad message is answered or dropped, the call is exact.

While SIPp makes the press-1 call of ``test_sipp`` (recorded), another socket
sends the SIP torture corpus of the core's tests, random bytes, a torn
INVITE, an oversize datagram and unknown methods over UDP, and over TCP a
message with a wrong Content-Length, a header section that never ends and
random bytes. Each UDP message that is answered gets the status the corpus
names; the server stays answering (OPTIONS); the malformed ones are counted
in ``/metrics``; and SIPp's call goes on undisturbed: it exits 0 and the
recording's caller channel holds every sample SIPp sent.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from media.g711 import alaw_decode
from tests.ivr.transport.sip.test_parser_hostile import CORPUS
from tests.ivr.transport.sipedge.live import Server
from tests.ivr.transport.sipedge.test_sipp import (
    _events,
    _find,
    _pcap_payloads,
    _sipp,
    server,
)

__all__ = ["server"]  # the module's server fixture, shared

TORTURE_VIA = b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-torture"


def _ours(data: bytes, port: int, n: int) -> bytes:
    """The corpus message with our own Via (so that an answer comes back to us)."""
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK-torture-{n}".encode()
    return data.replace(TORTURE_VIA, via)


def _answer(sock: socket.socket, wait_s: float) -> bytes | None:
    sock.settimeout(wait_s)
    try:
        return sock.recv(70000)
    except TimeoutError:
        return None


def _answer_to(sock: socket.socket, cseq: str, wait_s: float) -> bytes | None:
    """The first answer whose CSeq is ``cseq`` (others, answers to the noise, are passed)."""
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        got = _answer(sock, left)
        if got is not None and f"\r\nCSeq: {cseq}\r\n".encode() in got:
            return got
    return None


def _options(port: int, n: int) -> bytes:
    return (
        f"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK-alive-{n}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:ivr@127.0.0.1>\r\n"
        f"Call-ID: alive-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _malformed_count(server: Server) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("ivr_sip_malformed_total "):
            return float(line.split()[1])
    raise AssertionError("no ivr_sip_malformed_total in /metrics")


def _attack(server: Server, answers: dict[str, bytes | None], stop: threading.Event) -> None:
    rng = random.Random(4733)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    target = ("127.0.0.1", server.sip_port)
    try:
        for n, (what, data, _status) in enumerate(CORPUS):
            udp.sendto(_ours(data, port, n), target)
            answers[what] = _answer(udp, 0.3)
        noise = [
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400))) for _ in range(50)
        ]
        noise.append(_options(port, 900)[:57])  # torn
        noise.append(b"INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n" + b"X: y\r\n" * 10000)
        noise.append(_options(port, 901).replace(b"OPTIONS", b"FROBNICATE"))
        for data in noise:
            udp.sendto(data, target)
        answers["unknown method"] = _answer_to(udp, "901 FROBNICATE", 2.0)
        with socket.create_connection(target, timeout=5) as tcp:
            tcp.sendall(_options(port, 902).replace(b"Content-Length: 0", b"Content-Length: 99"))
            tcp.sendall(b"x" * 10)  # short of the 99: the message waits, alone
        with socket.create_connection(target, timeout=5) as tcp:
            tcp.sendall(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\n")
            try:
                for _ in range(200):  # a header section that never ends, 2 MB of it
                    tcp.sendall(b"X-Flood: " + b"a" * 10000 + b"\r\n")
            except OSError:
                pass  # the server closed the connection: what it should do
        with socket.create_connection(target, timeout=5) as tcp:
            tcp.sendall(bytes(rng.randrange(256) for _ in range(5000)))
        # Still answering, while the call goes on.
        udp.sendto(_options(port, 903), target)
        answers["alive"] = _answer_to(udp, "903 OPTIONS", 2.0)
    finally:
        udp.close()
        stop.set()


def test_hostile_sip_beside_a_call_is_answered_or_dropped_and_the_call_is_exact(
    server: Server, tmp_path: Path
) -> None:
    before = {c["id"] for c in server.calls()}
    malformed_before = _malformed_count(server)
    answers: dict[str, bytes | None] = {}
    stop = threading.Event()
    attacker = threading.Thread(target=_attack, args=(server, answers, stop), daemon=True)
    result: list[int] = []
    caller = threading.Thread(
        target=lambda: result.append(
            _sipp(server, "uac_call.xml", "+15550100", tmp_path, "-key", "dtmf", "dtmf_2833_1.pcap")
        ),
        daemon=True,
    )
    caller.start()
    time.sleep(1.0)  # SIPp's INVITE is in: the attack runs during the call
    attacker.start()
    caller.join(120)
    attacker.join(60)
    assert stop.is_set()
    assert result == [0]

    for what, _data, status in CORPUS:
        got = answers[what]
        if status is not None and got is not None:
            assert got.startswith(f"SIP/2.0 {status} ".encode()), (what, got[:80])
    refused = [w for w, _d, s in CORPUS if s is not None and answers[w] is not None]
    assert len(refused) >= 10  # most of the refusals came back to us, with their status
    assert (answers["unknown method"] or b"").startswith(b"SIP/2.0 501 ")
    assert (answers["alive"] or b"").startswith(b"SIP/2.0 200 ")
    # Every malformed message was counted, at least the corpus's and the noise's.
    malformed = sum(1 for _w, _d, s in CORPUS if s is not None)
    assert _malformed_count(server) - malformed_before >= malformed + 50

    call = server.new_call(before, media=True)
    assert [d["digit"] for d in _events(call, "dtmf")] == ["1"]
    assert call["recordings"], call["recording_trace"]
    wav = server.get(f"/v1/recordings/{call['recordings'][0]}/audio")
    (tmp_path / "call.wav").write_bytes(wav)
    audio, _rate = sf.read(tmp_path / "call.wav", dtype="int16")
    sent = alaw_decode(np.frombuffer(_pcap_payloads("g711a.pcap"), dtype=np.uint8))
    rec = server.get(f"/v1/recordings/{call['recordings'][0]}")
    detail = (rec.get("gaps"), call["stats"], call["media"])
    assert _find(audio[:, 0], sent) is not None, detail  # every sample SIPp sent, in order
    assert call["stats"]["frames_malformed"] == 0

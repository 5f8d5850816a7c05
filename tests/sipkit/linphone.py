"""Drive linphone's console client (Debian's ``linphone-cli``, linphonec 5.1) headless.

linphonec reads its commands on stdin, one a line, and prints the call's
states on stdout (``Call 1 ... connected.``, ``... ended (...)``). Each run
gets a temporary ``HOME`` and its own linphonerc (``-c FILE``):

* ``[sip]``: UDP at a free port, no TCP or TLS, IPv4 only (``use_ipv6=0``
  with ``ipv6_migration_done=1``: without it linphone turns IPv6 back on at
  start), RFC 4733 for DTMF (``use_rfc2833=1``, ``use_info=0``; or SIP INFO
  the other way round), a contact
  ``sip:caller@127.0.0.1``, no proxy and so no REGISTER;
* ``[audio_codec_N]``: PCMU and PCMA enabled, every other codec the Debian
  build has disabled (linphone adds any codec not listed, enabled);
* no video, no echo canceller.

linphone puts the host's outbound IPv4 address in its SDP ``c=`` line (the
address of the default route, whatever the call's destination; neither
``nat_address`` nor the ``nat``/``firewall`` commands change it in 5.1),
and sends its RTP from the loopback address to the answer's address: a
server on loopback reaches it by symmetric RTP (latching to where the
packets come from), or at that address, which is the host's own.

linphone starts listening only once it thinks the network is up, and that
only if its database folder (``$HOME/.local/share/linphone``) exists; so the
folder is made, and the driver waits until linphone holds its SIP port
before dialling. ``soundcard use files`` replaces the sound card with WAV
files: ``play FILE`` is the microphone and ``record FILE`` the speaker. A
line of digits sends them as DTMF. stdout is made line-buffered with
``stdbuf`` so the states arrive as they happen.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.sipkit.process import (
    LOOPBACK,
    Child,
    free_port,
    free_port_range,
    padded_wav,
    port_is_free,
)

BINARY = "linphonec"
BIND_ATTEMPTS = 3  # linphonec started again on another port if its port was taken
# Codecs of Debian's liblinphone, as it writes them in a fresh linphonerc.
OTHER_CODECS = (
    ("opus", 48000, 2), ("speex", 16000, 1), ("speex", 8000, 1), ("GSM", 8000, 1),
    ("G722", 8000, 1), ("G729", 8000, 1), ("speex", 32000, 1), ("G726-16", 8000, 1),
    ("G726-24", 8000, 1), ("G726-32", 8000, 1), ("G726-40", 8000, 1),
    ("AAL2-G726-16", 8000, 1), ("AAL2-G726-24", 8000, 1), ("AAL2-G726-32", 8000, 1),
    ("AAL2-G726-40", 8000, 1), ("L16", 44100, 2), ("L16", 44100, 1),
    ("iLBC", 8000, 1), ("BV16", 8000, 1), ("AMR", 8000, 1), ("AMR-WB", 16000, 1),
    ("SILK", 8000, 1), ("SILK", 16000, 1), ("SILK", 24000, 1), ("codec2", 8000, 1),
)  # fmt: skip
CONNECTED = re.compile(r"Call \d+ with \S+ connected\.")
ENDED = re.compile(r"Call \d+ with \S+ (ended \(([^)]*)\)|error)")


def available() -> bool:
    return shutil.which(BINARY) is not None and shutil.which("stdbuf") is not None


@dataclass
class LinphoneRun:
    uri: str
    sip_port: int
    answered: bool = False
    ended: bool = False
    end_reason: str = ""
    sent: str = ""
    output: str = ""
    returncode: int | None = None


def linphonerc(
    sip_port: int,
    rtp_ports: tuple[int, int],
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    dtmf: str = "rfc4733",
) -> str:
    """The linphonerc of one run; ``dtmf`` is ``rfc4733`` (telephone-events) or ``info``
    (SIP INFO with an ``application/dtmf-relay`` body, RFC 6086)."""
    if dtmf not in ("rfc4733", "info"):
        raise ValueError(f"dtmf is 'rfc4733' or 'info', not {dtmf!r}")
    lines = [
        "[sip]",
        f"sip_port={sip_port}",
        "sip_tcp_port=0",
        "sip_tls_port=0",
        "use_ipv6=0",
        "ipv6_migration_done=1",
        f"use_rfc2833={int(dtmf == 'rfc4733')}",
        f"use_info={int(dtmf == 'info')}",
        f"contact=sip:caller@{LOOPBACK}",
        "guess_hostname=0",
        "register_only_when_network_is_up=0",
        "",
        "[rtp]",
        f"audio_rtp_port={rtp_ports[0]}-{rtp_ports[1]}",
        "",
        "[video]",
        "automatically_initiate=0",
        "automatically_accept=0",
        "capture=0",
        "display=0",
        "",
        "[sound]",
        "echocancellation=0",
        "",
    ]
    ours = [(name, 8000, 1) for name in codecs]
    others = [c for c in OTHER_CODECS if c[0] not in codecs]
    for index, (mime, rate, channels) in enumerate([*ours, *others]):
        enabled = int(index < len(ours))
        lines += [f"[audio_codec_{index}]", f"mime={mime}", f"rate={rate}"]
        lines += [f"channels={channels}", f"enabled={enabled}", ""]
    return "\n".join(lines)


async def call(
    uri: str,
    *,
    wav: Path,
    workdir: Path,
    digit: str | None = "1",
    digit_after_s: float = 1.0,
    hangup_after_s: float = 3.0,
    answer_timeout_s: float = 10.0,
    record: Path | None = None,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    dtmf: str = "rfc4733",
) -> LinphoneRun:
    """Dial ``uri`` with ``wav`` as the microphone; ``digit`` after the answer; hang up; quit.

    The digit is pressed ``digit_after_s`` after the answer, unless that is
    past the hang-up (``hangup_after_s`` after the answer) or it is None; it
    goes as RFC 4733 telephone-events, or as SIP INFO with ``dtmf="info"``.
    Bounded (about ``answer_timeout_s + hangup_after_s + 10`` s at most), and
    linphonec's process group is killed at the end whatever happened."""
    folder = workdir / "linphone"
    home = folder / "home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
    mic = padded_wav(wav, folder / "microphone.wav", answer_timeout_s + hangup_after_s + 10)
    env = {**os.environ, "HOME": str(home)}
    argv = ["stdbuf", "-oL", "-eL", BINARY, "-c", str(folder / "linphonerc"), "-d", "4"]
    for attempt in range(1, BIND_ATTEMPTS + 1):
        # A port free when probed can be taken before linphone binds it (on all
        # addresses): then linphone says so and runs without SIP; start it again.
        sip_port = free_port(tcp=False)
        (folder / "linphonerc").write_text(linphonerc(sip_port, free_port_range(20), codecs, dtmf))
        try:
            return await _call(argv, folder, env, uri, sip_port, mic, digit, digit_after_s,
                               answer_timeout_s, hangup_after_s, record)  # fmt: skip
        except PortTaken:
            if attempt == BIND_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _call(
    argv: list[str],
    folder: Path,
    env: dict[str, str],
    uri: str,
    sip_port: int,
    mic: Path,
    digit: str | None,
    digit_after_s: float,
    answer_timeout_s: float,
    hangup_after_s: float,
    record: Path | None,
) -> LinphoneRun:
    run = LinphoneRun(uri=uri, sip_port=sip_port)
    loop = asyncio.get_running_loop()
    async with Child(argv, cwd=folder, env=env, stdin=True) as child:
        await _until_listening(child, sip_port, 10.0)
        await child.send_line("soundcard use files")
        await child.send_line(f"play {mic}")
        if record is not None:
            await child.send_line(f"record {record}")
        await child.send_line(f"call {uri}")
        run.answered = await _until(child, CONNECTED, ENDED, answer_timeout_s)
        if run.answered:
            answered_at = loop.time()
            due = digit is not None and digit_after_s < hangup_after_s
            if due and digit and not await _until(child, ENDED, None, digit_after_s):
                await child.send_line(digit)  # a line of digits is sent as DTMF
                run.sent = digit
            remaining = answered_at + hangup_after_s - loop.time()
            if not await _until(child, ENDED, None, max(0.0, remaining)):
                await child.send_line("terminate")
        await _until(child, ENDED, None, 5.0)
        ended = ENDED.search(child.output)
        run.ended = ended is not None
        run.end_reason = (ended.group(2) or ended.group(1)) if ended else ""
        await child.send_line("quit")
        run.returncode = await child.wait(5.0)
    run.output = child.output
    return run


class PortTaken(RuntimeError):
    """linphonec could not bind its SIP port: another process took it after the probe."""


async def _until_listening(child: Child, port: int, timeout_s: float) -> None:
    """Wait until something (linphone) holds UDP ``port``: it listens once the network is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while port_is_free(port, udp=True, tcp=False):
        if f"bind() failed for 0.0.0.0 port {port}" in child.output:
            raise PortTaken(f"UDP port {port} was taken before linphonec bound it")
        if child.returncode is not None or loop.time() > deadline:
            raise RuntimeError(f"linphonec never listened on {port}:\n{child.output[-3000:]}")
        await asyncio.sleep(0.05)


async def _until(
    child: Child, wanted: re.Pattern[str], stop: re.Pattern[str] | None, timeout_s: float
) -> bool:
    """Wait for ``wanted`` in the output; False on timeout or when ``stop`` comes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        output = child.output
        if wanted.search(output):
            return True
        if (stop is not None and stop.search(output)) or child.returncode is not None:
            return False
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)

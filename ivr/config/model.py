"""The config's model: numbers, teams, bots, limits, HTTP settings, the whole config.

Strict pydantic models, as for flow nodes (:mod:`ivr.flows.nodes`): no
coercion, unknown keys refused. :mod:`ivr.config.load` reads the YAML file
into them and checks what refers to what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from yarl import URL

from ivr.flows.nodes import Flow, RawFlow, Strict, TtsPrompt

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "demo.yaml"
SHIPPED_PROMPTS = Path(__file__).resolve().parent.parent.parent / "prompts"


class NumberConfig(Strict):
    """Per-number settings (docs/config.md)."""

    name: str
    flow: str
    recording: bool = True
    transcription: bool = False
    record_percent: Annotated[int, Field(ge=0, le=100)] = 100
    retention_days: Annotated[int, Field(ge=1, le=36500)] = 90
    consent_mode: Literal["opt_in", "notice"] = "opt_in"
    language: str = "en"  # a short BCP 47 tag: what callers speak, for transcription


class TeamConfig(Strict):
    bots: Annotated[int, Field(ge=0, le=10000)] = 0
    bot_greeting: str | None = None


class BotConfig(Strict):
    """How simulated agents behave."""

    answer_delay_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    greeting: str = "bot_greeting_en"
    max_call_s: Annotated[float, Field(gt=0, le=86400)] = 600.0


class LimitsConfig(Strict):
    max_calls: Annotated[int, Field(ge=1, le=100000)] = 2000
    agent_offer_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    retention_sweep_s: Annotated[float, Field(ge=1, le=86400)] = 3600.0


class HttpConfig(Strict):
    """What the HTTP side accepts beyond its defaults.

    ``allowed_origins``: web origins (``scheme://host[:port]``) whose pages
    may open the call and agent WebSockets, besides the server's own origin
    (docs/protocol.md, RFC 6455 section 10.2). Each is checked and kept in
    canonical form (:func:`canonical_origin`).
    """

    allowed_origins: Annotated[list[str], Field(max_length=100)] = Field(default_factory=list)


class AuditSettings(Strict):
    """Where the audit chain's signed checkpoints go (docs/privacy.md, "The audit log").

    ``checkpoint_file`` and ``signing_key``: paths (relative ones from the
    config file's folder); unset, ``audit-checkpoints.jsonl`` and ``audit.key``
    in the data folder.
    """

    checkpoint_file: str | None = None
    signing_key: str | None = None
    checkpoint_every_s: Annotated[float, Field(ge=1, le=86400)] = 60.0
    log_checkpoints: bool = False


class EncryptionSettings(Strict):
    """Recordings and transcripts at rest (docs/privacy.md, "Encryption at rest").

    ``enabled``: new recordings and transcripts are sealed (AES-256-GCM, a
    data key each); off, they are written clear (sealed ones stay readable).
    ``key_folder``: where the data keys and the local key encryption key
    live (relative paths from the config file's folder); unset, the
    ``IVR_KEYS`` environment variable, else ``<data>-keys`` beside the data
    folder. ``kms``: ``"module:factory"`` of an external KMS (docs/privacy.md).
    """

    enabled: bool = True
    key_folder: str | None = None
    kms: str | None = None


SipTransportName = Literal["udp", "tcp"]


class SipSettings(Strict):
    """The SIP and RTP edge (docs/config.md#sip): off unless ``enabled``, or ``--sip-port``.

    ``host`` is the address the edge listens on (UDP and TCP at ``port``);
    ``public_address`` the one peers are told to reach us at, in Contact, Via
    and SDP (default: ``host``, which must then be a concrete address). Each
    call takes an even RTP port from ``rtp_ports`` and the odd one above it
    for RTCP. ``max_calls`` bounds the SIP calls alone, under the server's
    ``limits.max_calls``; ``answer_after_s`` is how long a call rings (180)
    before the 200 OK; a call whose RTP stops for ``media_timeout_s`` (while
    we expect some) is hung up.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 5060
    transports: Annotated[list[SipTransportName], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: list[SipTransportName](["udp", "tcp"])
    )
    rtp_ports: str = "20000-20999"  # LOW-HIGH, as ``ivr serve --rtp-ports`` takes it
    public_address: str | None = None
    max_calls: Annotated[int, Field(ge=1, le=100000)] = 500
    answer_after_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    media_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 60.0  # 0: never


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` as (20000, 20999); ValueError unless 1024 <= LOW, LOW + 1 < HIGH <= 65535.

    At least two ports: an RTP port is even and its RTCP port the odd one above.
    """
    low_text, sep, high_text = text.partition("-")
    if not sep or not low_text.isdigit() or not high_text.isdigit():
        raise ValueError(f"{text[:24]!r} is not a port range like 20000-20999")
    low, high = int(low_text), int(high_text)
    if not 1024 <= low < high <= 65535:
        raise ValueError(f"{text[:24]!r}: need 1024 <= LOW < HIGH <= 65535")
    if low + low % 2 + 1 > high:
        raise ValueError(f"{text[:24]!r}: no even port with its odd neighbour in the range")
    return low, high


def canonical_origin(text: str) -> str | None:
    """An origin in the form browsers send it (RFC 6454 section 6.2), or None if not one.

    Lower-case scheme and host, the port only when it is not the scheme's
    default: ``HTTPS://App.Example.com:443`` gives ``https://app.example.com``.
    Only ``http`` and ``https`` origins, with a host and nothing after it
    (no user, path, query or fragment).
    """
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return None
    if (
        url.scheme not in ("http", "https")
        or not url.raw_host
        or url.user is not None
        or url.password is not None
        or url.raw_path not in ("", "/")
        or text.rstrip().endswith("/")
        or url.query_string
        or url.fragment
        or "#" in text
        or "?" in text
    ):
        return None
    host = url.raw_host  # IDNA-encoded, as browsers send it
    host = f"[{host}]" if ":" in host else host
    default = 443 if url.scheme == "https" else 80
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{host}{port}"


class RawConfig(Strict):
    prompts_dir: str | None = None
    bots: BotConfig = BotConfig()
    limits: LimitsConfig = LimitsConfig()
    http: HttpConfig = HttpConfig()
    sip: SipSettings = SipSettings()
    audit: AuditSettings = AuditSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    numbers: dict[str, NumberConfig]
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    flows: dict[str, RawFlow]


@dataclass(frozen=True, slots=True)
class PromptSource:
    """Where a prompt's audio comes from: a WAV file, or text to render."""

    id: str
    path: Path | None = None
    tts: TtsPrompt | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config."""

    source: str
    numbers: Mapping[str, NumberConfig]
    teams: Mapping[str, TeamConfig]
    flows: Mapping[str, Flow]
    bots: BotConfig
    limits: LimitsConfig
    prompts: Mapping[str, PromptSource] = field(default_factory=dict)
    prompts_dir: Path = SHIPPED_PROMPTS
    http: HttpConfig = field(default_factory=HttpConfig)
    sip: SipSettings = field(default_factory=SipSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)

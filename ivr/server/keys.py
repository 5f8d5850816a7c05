"""What the parts of a running server find each other by: its settings and AppKeys.

A leaf module: the app factory (:mod:`ivr.server.app`) fills these keys at
start-up, and the edges (the API, the pages, the WebSocket transport) read
them, without importing the factory (which imports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ivr.access.audit import AuditLog
from ivr.access.auth import Authenticator, HashParams, LoginLimiter
from ivr.call.clock import MediaClock
from ivr.call.switchboard import Switchboard
from ivr.config import Config
from ivr.server.metrics import ServerMetrics
from ivr.store import Store


@dataclass(frozen=True, slots=True)
class Settings:
    """What a server needs to start."""

    data_dir: Path
    # None: SQLite in data_dir; else a postgresql:// URL (never in a repr: it may
    # hold a password).
    database: str | None = field(default=None, repr=False)
    config_path: Path | None = None
    config: Config | None = None  # already loaded (tests); else read from config_path
    hash_params: HashParams = field(default_factory=HashParams)
    # /metrics: with a token, only ``Authorization: Bearer <token>`` is served
    # (never in a repr, so never in a log line). With a port, /metrics is on a
    # listener of its own at metrics_host:metrics_port (0: any free port), and
    # not on the main one. Neither: open on the main listener, as before.
    metrics_token: str | None = field(default=None, repr=False)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # This process among the nodes sharing the store (ivr.store.nodes); None: host:pid.
    node_id: str | None = None
    # Where the other nodes reach this one (http://host:port): with it, agents here
    # may take calls from other nodes, and calls here go to agents there (docs/nodes.md).
    node_url: str | None = None
    # The key folder (ivr.store.keyring): ``ivr serve --keys`` or IVR_KEYS; None: the
    # config's ``encryption.key_folder``, else beside the data folder.
    keys: Path | None = None


settings_key = web.AppKey("settings", Settings)
node_key = web.AppKey("node", str)
"""This node's id in the store's ``nodes`` (Settings.node_id, or host:pid)."""
store_key = web.AppKey("store", Store)
switchboard_key = web.AppKey("switchboard", Switchboard)
authenticator_key = web.AppKey("authenticator", Authenticator)
clock_key = web.AppKey("clock", MediaClock)
audit_key = web.AppKey("audit", AuditLog)
metrics_key = web.AppKey("metrics", ServerMetrics)
limiter_key = web.AppKey("limiter", LoginLimiter)
allowed_origins_key = web.AppKey("allowed_origins", frozenset[str])
"""The config's http.allowed_origins, canonical (ivr.transport.origin.check_origin)."""
metrics_runner_key = web.AppKey("metrics_runner", web.AppRunner)
"""The separate /metrics listener's runner, when ``Settings.metrics_port`` is set."""

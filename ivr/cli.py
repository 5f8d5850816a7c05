"""The ``ivr`` command: serve, users, check-config, prompts, privacy, load.

Each command imports what it needs when it runs, not at the top: ``ivr
--help`` and the small commands then start without loading the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ivr import __version__, eventloop
from ivr.errors import InvalidConfig, IvrError

if TYPE_CHECKING:
    from ivr.config import Config

DEFAULT_DATA = Path("data")
METRICS_TOKEN_ENV = "IVR_METRICS_TOKEN"
DATABASE_ENV = "IVR_DATABASE"
KEYS_ENV = "IVR_KEYS"
MIN_METRICS_TOKEN = 16


def _database_option(parser: argparse.ArgumentParser) -> None:
    """``--database URL``: PostgreSQL instead of the data folder's SQLite file; ``--keys DIR``."""
    parser.add_argument(
        "--database",
        default=os.environ.get(DATABASE_ENV) or None,
        metavar="URL",
        help="a postgresql:// URL to keep the store in PostgreSQL "
        f"(default: the {DATABASE_ENV} environment variable; unset: SQLite in --data)",
    )
    parser.add_argument(
        "--keys",
        type=Path,
        default=Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None,
        metavar="DIR",
        help="the folder of the data keys that seal recordings and transcripts "
        f"(default: the {KEYS_ENV} environment variable; unset: DATA-keys beside --data)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr", description="An asynchronous IVR softswitch.")
    p.add_argument("--version", action="version", version=f"ivr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the call server")
    serve.add_argument("--config", type=Path, help="YAML config (default: the shipped demo)")
    serve.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="data directory (default: ./data)"
    )
    _database_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument(
        "--metrics-token-file",
        type=Path,
        help="/metrics needs 'Authorization: Bearer TOKEN', TOKEN read from this file "
        f"(default: the {METRICS_TOKEN_ENV} environment variable; unset: /metrics is open)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on a listener of its own on this port, and not on --port",
    )
    serve.add_argument(
        "--metrics-host",
        help="the address of the --metrics-port listener (default: 127.0.0.1)",
    )
    serve.add_argument(
        "--sip-port",
        type=int,
        help="take SIP calls on UDP and TCP at --host on this port (turns the config's sip: on)",
    )
    serve.add_argument(
        "--rtp-ports",
        metavar="LOW-HIGH",
        help="the UDP ports for the calls' RTP and RTCP (default: the config's sip.rtp_ports)",
    )
    serve.add_argument(
        "--node-id",
        default=os.environ.get("IVR_NODE_ID"),
        help="this node's id among the nodes sharing the store (IVR_NODE_ID; default: "
        "HOST-XXXXXXXX, from the host and the --data folder, the same at every restart)",
    )
    serve.add_argument(
        "--advertise",
        metavar="URL",
        default=os.environ.get("IVR_ADVERTISE"),
        help="where the other nodes reach this one (http://HOST:PORT; IVR_ADVERTISE): its "
        "agents may then take calls from other nodes, and its calls go to theirs "
        "(default: none, calls stay on this node)",
    )
    serve.add_argument(
        "--drain-s",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, take no new calls and let the live ones finish for up to this "
        "long, then hang them up (default: 30; Ctrl-C stops at once)",
    )
    serve.add_argument(
        "--loop",
        choices=eventloop.CHOICES,
        default="auto",
        help="the event loop: uvloop (faster media), asyncio (the standard one), "
        "or auto (uvloop when installed; the default)",
    )

    users = sub.add_parser("users", help="manage users")
    usub = users.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="add a user")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin", "owner"])
    add.add_argument("--team", action="append", default=[], help="a team (repeatable)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else one is generated)",
    )
    add.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(add)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", type=Path)

    flows = sub.add_parser("check-flows", help="prove every number's flow keeps the privacy rules")
    flows.add_argument("--config", type=Path)

    from ivr.simulate import cli as simulate_cli

    simulate_cli.add_parser(sub)
    simulate_cli.add_simulate_parser(sub)

    audit = sub.add_parser("audit", help="the audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser(
        "verify", help="check the audit log's hash chain, and its tail against the checkpoints"
    )
    verify.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(verify)
    verify.add_argument("--config", type=Path, help="the config whose audit section to follow")
    verify.add_argument(
        "--checkpoints", type=Path, help="the checkpoint file (default: the config's)"
    )
    verify.add_argument("--key", type=Path, help="the signing key (default: the config's)")
    verify.add_argument(
        "--require-checkpoints",
        action="store_true",
        help="fail if there is no checkpoint file to check the log's tail against",
    )

    erase = sub.add_parser("erase", help="erase a contact or an agent (prints the receipt)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", help="a caller's E.164 number")
    who.add_argument("--agent", help="an agent's e-mail")
    erase.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(erase)

    unblock = sub.add_parser(
        "unblock", help="let an erased caller be recorded again (they withdrew their objection)"
    )
    unblock.add_argument("--contact", required=True, help="the caller's E.164 number")
    unblock.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(unblock)

    export = sub.add_parser("export", help="an access export (ZIP) for a contact or an agent")
    who = export.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", help="a caller's E.164 number")
    who.add_argument("--agent", help="an agent's e-mail")
    export.add_argument("--since", help="ISO 8601 date (default: 6 months ago)")
    export.add_argument("--until", help="ISO 8601 date (default: now)")
    export.add_argument("--out", type=Path, required=True, help="the ZIP file to write")
    export.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(export)

    nodes = sub.add_parser("nodes", help="the nodes sharing the store, alive or not")
    nodes.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(nodes)

    purge = sub.add_parser("purge", help="delete recordings past their retention now")
    purge.add_argument("--data", type=Path, default=DEFAULT_DATA)
    _database_option(purge)

    keys = sub.add_parser(
        "keys", help="the data keys that seal recordings: status, rotate, destroy an old KEK"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (
        ("status", "the key encryption keys, and how many data keys each wraps"),
        ("rotate", "re-wrap every data key under a new key encryption key (resumes if cut off)"),
        ("destroy", "destroy an old key encryption key that wraps no data key any more"),
    ):
        k = keys_sub.add_parser(name, help=text)
        if name == "destroy":
            k.add_argument("kek", help="the id of the key encryption key (kek_...)")
        k.add_argument("--data", type=Path, default=DEFAULT_DATA)
        k.add_argument("--config", type=Path, help="a config whose encryption.key_folder to use")
        _database_option(k)

    from ivr.load import cli as load_cli

    load_cli.add_parser(sub)

    cluster = sub.add_parser(
        "cluster", help="several nodes on this machine: PostgreSQL, HAProxy, Kamailio"
    )
    csub = cluster.add_subparsers(dest="cluster_command", required=True)
    cup = csub.add_parser(
        "up",
        help="start a throwaway PostgreSQL, N nodes, HAProxy and Kamailio on loopback; "
        "Ctrl-C stops them all",
    )
    cup.add_argument("--nodes", type=int, default=2, help="how many nodes (default: 2)")
    cup.add_argument(
        "--port", type=int, default=8080,
        help="HAProxy's port for calls, the API and the pages (default: 8080); "
        "node N listens on PORT+N",
    )  # fmt: skip
    cup.add_argument(
        "--sip-port", type=int, default=5060,
        help="Kamailio's UDP port for SIP calls (default: 5060); node N's SIP on SIP_PORT+N",
    )  # fmt: skip
    cup.add_argument("--config", type=Path, help="the nodes' YAML config (default: the demo)")
    cup.add_argument(
        "--data", type=Path,
        help="the data folder all nodes share (default: a throwaway one)",
    )  # fmt: skip
    cup.add_argument(
        "--drain-s", type=float, default=5.0, metavar="SECONDS",
        help="on Ctrl-C, how long the nodes' live calls may go on (default: 5)",
    )  # fmt: skip
    cup.add_argument("--deploy", type=Path, help="the folder of haproxy.cfg and kamailio.cfg")
    cup.add_argument("--keep", action="store_true", help="keep the cluster's folder (logs)")

    prompts = sub.add_parser("prompts", help="prompt audio")
    psub = prompts.add_subparsers(dest="prompts_command", required=True)
    render = psub.add_parser("render", help="re-render prompts/*.txt to WAV with espeak-ng")
    render.add_argument("--dir", type=Path, default=None, help="prompts folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "users":
            return asyncio.run(_users_add(args))
        if args.command in ("erase", "export", "purge", "unblock"):
            return asyncio.run(_privacy(args))
        if args.command == "load":
            from ivr.load import cli as load_cli

            return load_cli.run(args)
        if args.command == "audit":
            return asyncio.run(_audit_verify(args))
        if args.command == "nodes":
            return asyncio.run(_nodes(args))
        if args.command == "keys":
            return _keys(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "check-flows":
            return _check_flows(args)
        if args.command == "test-flows":
            from ivr.simulate import cli as simulate_cli

            return simulate_cli.run(args)
        if args.command == "simulate":
            from ivr.simulate import cli as simulate_cli

            return simulate_cli.run_simulate(args)
        if args.command == "prompts":
            return _render_prompts(args)
        if args.command == "cluster":
            return _cluster_up(args)
    except InvalidConfig as exc:
        print(exc, file=sys.stderr)
        return 1
    except IvrError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    return 2


def _sip_overrides(config: Config, args: argparse.Namespace) -> Config:
    """``--sip-port`` turns SIP on at ``--host``; ``--rtp-ports`` sets the RTP range."""
    from dataclasses import replace

    from ivr.config import parse_port_range

    update: dict[str, object] = {}
    if args.sip_port is not None:
        if not 0 <= args.sip_port <= 65535:
            raise ValueError(f"--sip-port {args.sip_port}: not a port")
        update.update(enabled=True, host=args.host, port=args.sip_port)
    if args.rtp_ports is not None:
        parse_port_range(args.rtp_ports)
        update["rtp_ports"] = args.rtp_ports
    if not update:
        return config
    return replace(config, sip=config.sip.model_copy(update=update))


def _serve(args: argparse.Namespace) -> int:
    from ivr.config import load_config
    from ivr.server import serving
    from ivr.server.app import create_app, drain, metrics_addresses, sip_address
    from ivr.server.keys import Settings
    from ivr.store import describe_database

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from ivr.flows.compliance import check_all, format_violations

    try:
        token = _metrics_token(args)
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    if args.metrics_host is not None and args.metrics_port is None:
        print("ivr: --metrics-host needs --metrics-port", file=sys.stderr)
        return 2
    config = load_config(args.config)
    try:
        config = _sip_overrides(config, args)
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    violations = check_all(config.numbers, config.flows)
    if violations:
        print(format_violations(violations), file=sys.stderr)
        return 1
    settings = Settings(
        data_dir=args.data,
        database=args.database,
        config=config,
        metrics_token=token,
        metrics_host=args.metrics_host or "127.0.0.1",
        metrics_port=args.metrics_port,
        node_id=args.node_id or default_node_id(args.data),
        node_url=args.advertise,
        keys=args.keys,
    )
    app = create_app(settings)
    print(
        f"ivr {__version__}: {len(config.numbers)} numbers from {config.source}; "
        f"data in {args.data}; store: {describe_database(args.data, args.database)}",
        flush=True,
    )

    def listening() -> None:  # called once the socket is bound
        if settings.metrics_port is None:
            where = f"http://{args.host}:{args.port}/metrics"
        else:
            where = ", ".join(f"http://{h}:{p}/metrics" for h, p in metrics_addresses(app))
        sip = sip_address(app)
        sip_text = ""
        if sip is not None:
            transports = "+".join(config.sip.transports)
            sip_text = f"; SIP: sip:{sip[0]}:{sip[1]} ({transports}), RTP {config.sip.rtp_ports}"
        print(
            f"listening on http://{args.host}:{args.port} "
            f"(calls: ws://{args.host}:{args.port}/v1/call{sip_text}; metrics: {where}"
            f"{', token needed' if token is not None else ''}; "
            f"loop: {eventloop.loop_name(args.loop)}); Ctrl-C stops",
            flush=True,
        )

    try:
        serving.run(
            app,
            host=args.host,
            port=args.port,
            on_listening=listening,
            shutdown_timeout=10,
            loop_choice=args.loop,
            on_drain=lambda: drain(app, max(args.drain_s, 0.0)),
        )
    except OSError as exc:  # a port in use, a folder that cannot be written
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0


def _cluster_up(args: argparse.Namespace) -> int:
    from ivr import cluster

    plan = cluster.Plan(
        nodes=args.nodes, port=args.port, sip_port=args.sip_port, drain_s=args.drain_s,
        config=args.config, data=args.data, deploy=args.deploy or cluster.DEPLOY, keep=args.keep,
    )  # fmt: skip
    try:
        return cluster.up(plan)
    except cluster.ClusterError as exc:
        print(f"ivr cluster: {exc}", file=sys.stderr)
        return 1


def _metrics_token(args: argparse.Namespace) -> str | None:
    """The /metrics token: from --metrics-token-file, else the environment, else None.

    Never printed: errors name where the token came from, not what it is.
    """
    token: str
    if args.metrics_token_file is not None:
        where = f"--metrics-token-file {args.metrics_token_file}"
        try:
            token = args.metrics_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: cannot read it ({exc})") from None
    elif METRICS_TOKEN_ENV in os.environ:
        where = METRICS_TOKEN_ENV
        token = os.environ[METRICS_TOKEN_ENV].strip()
    else:
        return None
    if len(token) < MIN_METRICS_TOKEN:
        raise ValueError(
            f"{where}: the metrics token needs at least {MIN_METRICS_TOKEN} characters"
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(f"{where}: the metrics token must be printable ASCII without spaces")
    return token


async def _users_add(args: argparse.Namespace) -> int:
    """``ivr users add``: the use case the API's ``POST /v1/users`` runs, without an actor.

    That is how the first Owner is made: trusted, and not audited (docs/access.md).
    """
    from ivr.access.auth import generate_password
    from ivr.services import users
    from ivr.services.context import local

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("ivr: the password must have at least 8 characters", file=sys.stderr)
            return 1
        generated = False
    else:
        password, generated = generate_password(), True
    async with local(args.data, args.database, keys=args.keys) as ctx:
        user = await users.add_user(
            ctx,
            None,
            email=args.email,
            name=args.name,
            role=args.role,
            password=password,
            teams=args.team,
        )
    print(
        f"added {user.role} {user.email} ({user.id})"
        + (f" in team(s) {', '.join(user.teams)}" if user.teams else "")
    )
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def _privacy(args: argparse.Namespace) -> int:
    """``ivr erase``, ``ivr export``, ``ivr purge``: the API's use cases, as ``cli``."""
    import json

    from ivr.e164 import is_e164
    from ivr.services import privacy
    from ivr.services.context import local

    if args.database is None and not (args.data / "ivr.sqlite3").is_file():
        print(f"ivr: no database in {args.data}", file=sys.stderr)
        return 1
    async with local(args.data, args.database, keys=args.keys, resume_erasures=True) as ctx:
        if args.command == "purge":
            print(json.dumps(await privacy.purge(ctx, None), indent=2))
            return 0
        if args.command == "unblock":
            print(json.dumps(await privacy.lift_block(ctx, None, args.contact), indent=2))
            return 0
        if args.contact is not None:
            if not is_e164(args.contact):
                print("ivr: --contact must be an E.164 number like +15550100", file=sys.stderr)
                return 1
            kind: Literal["contact", "agent"] = "contact"
            subject = args.contact
        else:
            kind, subject = "agent", await privacy.agent_subject(ctx, args.agent)
        if args.command == "erase":
            print(json.dumps(await privacy.erase(ctx, None, kind, subject), indent=2))
            return 0
        try:
            since = _stamp(args.since)
            until = _stamp(args.until)
        except ValueError as exc:
            print(f"ivr: {exc}", file=sys.stderr)
            return 1
        done = await privacy.export(
            ctx, None, kind, subject, since=since, until=until, out=args.out
        )
        print(f"wrote {args.out}: {json.dumps(done.manifest['counts'])}")
        return 0


def _stamp(text: str | None) -> str | None:
    """An ISO 8601 date or time from the command line in the store's UTC form (None: none)."""
    from datetime import UTC

    from ivr import stamp

    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp.iso(value if value.tzinfo else value.replace(tzinfo=UTC))


def default_node_id(data: Path) -> str:
    """The host's name and a digest of the data folder: the same at every restart.

    So a node that crashed and starts again, on any port, is the same node
    and repairs its own calls. Two nodes sharing one folder need --node-id.
    """
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


async def _nodes(args: argparse.Namespace) -> int:
    from ivr.services.context import local
    from ivr.stamp import now_iso
    from ivr.store.nodes import NODE_TIMEOUT_S

    if args.database is None and not (args.data / "ivr.sqlite3").is_file():
        print(f"ivr: no database in {args.data}", file=sys.stderr)
        return 1
    async with local(args.data, args.database, keys=args.keys) as ctx:
        rows = await ctx.store.nodes.nodes(now_iso(), NODE_TIMEOUT_S)
    print(f"{'node':<32} {'state':<9} {'alive':<5} {'calls':>5}  {'heartbeat':<24} started")
    for n in rows:
        alive = "yes" if n.alive else "no"
        print(
            f"{n.id:<32} {n.state:<9} {alive:<5} {n.calls:>5}  {n.heartbeat_at:<24} {n.started_at}"
        )
    return 0


def _keys(args: argparse.Namespace) -> int:
    """``ivr keys status|rotate|destroy``: the key folder only, the store is not opened."""
    from ivr.config import load_config
    from ivr.store.keyring import key_folder_for, open_keyring

    enc = load_config(args.config).encryption if args.config else None
    folder = args.keys or (
        Path(enc.key_folder) if enc is not None and enc.key_folder else key_folder_for(args.data)
    )
    if args.keys_command != "rotate" and not (folder / "keys.sqlite3").is_file():
        print(f"ivr: no keys in {folder}", file=sys.stderr)
        return 1
    ring = open_keyring(folder, enc.kms if enc is not None else None)
    if args.keys_command == "status":
        counts = ring.counts()
        current = ring.wrapper.current()
        print(f"keys in {folder}")
        for kek in sorted(set(ring.wrapper.keks()) | set(counts)):
            mark = " (current)" if kek == current else ""
            print(f"  {kek}{mark}: wraps {counts.get(kek, 0)} data key(s)")
        if ring.rotating() is not None:
            print("  a rotation is not finished: run `ivr keys rotate` to resume it")
        return 0
    if args.keys_command == "rotate":
        done = ring.rotate()
        verb = "resumed: moved" if done.resumed else "moved"
        print(f"{verb} {done.rewrapped} data key(s) to the new key encryption key {done.kek}")
        for old in done.previous:
            print(f"  {old} wraps nothing now: `ivr keys destroy {old}` destroys it")
        return 0
    ring.destroy_kek(args.kek)
    print(f"destroyed the key encryption key {args.kek}")
    return 0


async def _audit_verify(args: argparse.Namespace) -> int:
    from ivr.services import audit
    from ivr.services.context import local

    if args.database is None and not (args.data / "ivr.sqlite3").is_file():
        print(f"ivr: no database in {args.data}", file=sys.stderr)
        return 1
    from ivr.access.checkpoint import locations
    from ivr.config import AuditSettings, load_config

    settings = load_config(args.config).audit if args.config else AuditSettings()
    key_path, file = locations(settings, args.data)
    key_path, file = args.key or key_path, args.checkpoints or file
    async with local(args.data, args.database, keys=args.keys) as ctx:
        verdict = await audit.verify_chain(ctx)
        if not verdict.ok:
            print(
                f"audit log BROKEN at entry {verdict.first_bad_seq}: {verdict.reason}",
                file=sys.stderr,
            )
            return 1
        intact = f"{verdict.entries} entries, the hash chain is intact"
        if not file.is_file():
            if key_path.is_file() and verdict.entries:
                # A server made the key at its first start and signs at least at
                # shutdown: the file gone means the proof of the tail is gone.
                print(f"audit log: {intact}", file=sys.stderr)
                print(
                    f"audit log BROKEN: the checkpoint file {file} is missing, though the "
                    f"signing key {key_path} exists: entries cut from the end cannot be ruled out",
                    file=sys.stderr,
                )
                return 1
            if args.require_checkpoints:
                print(f"audit log: {intact}, but {file} is missing", file=sys.stderr)
                return 1
            print(
                f"audit log ok: {intact}; no checkpoints yet ({file} is missing), so "
                "entries cut from its end would not show"
            )
            return 0
        cp = await audit.check_checkpoints(ctx, key_path, file)
    for problem in cp.problems:
        print(f"  {problem}", file=sys.stderr)
    if cp.ok:
        print(f"audit log ok: {intact}; {cp.message}")
        return 0
    print(f"audit log: {intact}", file=sys.stderr)
    print(f"audit log BROKEN: {cp.message}", file=sys.stderr)
    return 1


def _check_config(args: argparse.Namespace) -> int:
    from ivr.config import load_config

    config = load_config(args.config)
    print(
        f"{config.source}: ok ({len(config.numbers)} numbers, {len(config.flows)} flows, "
        f"{len(config.teams)} teams, {len(config.prompts)} prompts)"
    )
    return 0


def _check_flows(args: argparse.Namespace) -> int:
    from ivr.config import load_config
    from ivr.flows.compliance import check_all, format_violations

    config = load_config(args.config)
    violations = check_all(config.numbers, config.flows)
    print(format_violations(violations), file=sys.stderr if violations else sys.stdout)
    return 1 if violations else 0


def _render_prompts(args: argparse.Namespace) -> int:
    from ivr.config import SHIPPED_PROMPTS
    from ivr.speech import tts

    folder = args.dir or SHIPPED_PROMPTS
    for path in tts.render_prompt_dir(folder):
        print(f"rendered {path.name}")
    return 0

"""``ivr load``: run a scenario against a server, print the summary, write the reports.

Exit status: 0 when every objective holds, 1 when one fails (the summary
says which), 2 for a scenario that cannot be used or a server that cannot
(unreachable, refuses the runner's credentials, answers no call).

``ivr.cli`` wires this in with :func:`add_parser` and :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ivr import eventloop as event_loop
from ivr.load.errors import InvalidScenario, LoadError
from ivr.load.scenario import SCENARIOS_DIR, Scenario, load_scenario

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_REPORTS = Path("artifacts") / "load"
EXIT_OK, EXIT_OBJECTIVE_FAILED, EXIT_UNUSABLE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``load`` to the ``ivr`` command's subcommands."""
    p = sub.add_parser(
        "load",
        help="run a load scenario and check every call",
        description="Place the calls of a scenario, measure them, verify every recording "
        "through the API, and write report.json and report.html. Exit status: 0 when "
        "every objective holds, 1 when one fails, 2 for a bad scenario or an unusable server.",
    )
    configure_parser(p)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scenario", help="a scenario file, or the name of one in scenarios/ (e.g. smoke)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help=f"the server (default {DEFAULT_URL})")
    where.add_argument(
        "--embedded",
        action="store_true",
        help="start a server (shipped config) in a temporary data directory for the run",
    )
    p.add_argument("--config", type=Path, help="with --embedded: the server's config file")
    p.add_argument("--processes", type=int, help="worker processes (0: run in this process)")
    p.add_argument("--calls", type=int, help="override the scenario's number of calls")
    p.add_argument("--concurrency", type=int, help="override the scenario's maximum concurrency")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--report", type=Path, help="folder for report.json and report.html")
    p.add_argument(
        "--email",
        default=os.environ.get("IVR_LOAD_EMAIL"),
        help="user to verify as (or IVR_LOAD_EMAIL)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read that user's password from standard input (else IVR_LOAD_PASSWORD)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip checking calls through the API")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def resolve_scenario(name: str) -> Path:
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    shipped = SCENARIOS_DIR / f"{name}.yaml"
    return shipped if shipped.exists() else path


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "calls": args.calls,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "processes": args.processes,
    }


def run(args: argparse.Namespace) -> int:
    """The ``ivr load`` command; returns the exit status."""
    try:
        return event_loop.run(run_async(args))
    except KeyboardInterrupt:
        print("ivr load: interrupted", file=sys.stderr)
        return 130


async def run_async(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """:func:`run` without its own event loop (tests, embedding)."""
    # Imported here, not at the top: every `ivr` command builds this parser,
    # and only `ivr load` needs the runner, the report and the embedded server.
    from ivr.load.embedded import embedded_server
    from ivr.load.report import build_report, exit_status, summary_text, write_report
    from ivr.load.runner import Target, run_load

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        scenario = load_scenario(resolve_scenario(args.scenario), _overrides(args))
    except InvalidScenario as exc:
        print(exc, file=err)
        return EXIT_UNUSABLE
    if args.config is not None and not args.embedded:
        print("ivr load: --config goes with --embedded", file=err)
        return EXIT_UNUSABLE
    progress = None if args.quiet else err
    verify = False if args.no_verify else None
    try:
        if args.embedded:
            teams = (scenario.spec.agents.team,) if scenario.spec.agents else ()
            async with embedded_server(args.config, teams) as target:
                result = await run_load(
                    scenario, target, processes=args.processes, verify=verify, progress=progress
                )
        else:
            password = _password(args)
            target = Target.parse(args.url or DEFAULT_URL, email=args.email, password=password)
            result = await run_load(
                scenario, target, processes=args.processes, verify=verify, progress=progress
            )
    except LoadError as exc:
        print(f"ivr load: {exc}", file=err)
        return EXIT_UNUSABLE
    report = build_report(result)
    folder = args.report or _default_folder(scenario)
    json_path, html_path = write_report(report, folder)
    print(summary_text(report), file=out)
    print(f"reports: {json_path} {html_path}", file=out)
    return exit_status(report)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return os.environ.get("IVR_LOAD_PASSWORD")


def _default_folder(scenario: Scenario) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return DEFAULT_REPORTS / f"{scenario.name}-{stamp}"


def main(argv: list[str] | None = None) -> int:
    """``python -m ivr.load.cli``: the command on its own, until ``ivr load`` is wired in."""
    p = argparse.ArgumentParser(prog="ivr load")
    configure_parser(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

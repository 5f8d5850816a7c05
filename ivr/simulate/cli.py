"""``ivr test-flows``: run flow test cases in virtual time and report like pytest."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr.simulate.cases import CaseResult


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "test-flows",
        help="run flow test cases (YAML) on the switch in virtual time",
        description=(
            "Each case dials a number, acts as the caller and checks the line reached, the "
            "recording, the consent, the prompts heard and the path taken. Cases default to "
            "flows/tests/*.yaml beside --config (the demo's ship with it)."
        ),
    )
    p.add_argument("cases", nargs="*", type=Path, help="case files or folders of them")
    p.add_argument("--config", type=Path)
    p.add_argument(
        "--no-proof",
        action="store_true",
        help="skip the compliance proof (to see what a flow it would refuse does)",
    )
    p.add_argument(
        "--require-coverage",
        action="store_true",
        help="fail if a branch of a configured number's flow is taken by no case",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")


def run(args: argparse.Namespace) -> int:
    from ivr.simulate.cases import case_files, configs_of, coverage, default_cases, run_files

    files = case_files(args.cases) if args.cases else default_cases(args.config)
    if not files:
        print(
            "ivr test-flows: no case files (give some, or put them in flows/tests/)",
            file=sys.stderr,
        )
        return 4
    t0 = time.perf_counter()
    cache = Path(tempfile.mkdtemp(prefix="ivr-tts-"))

    def report(r: CaseResult) -> None:
        if r.passed and args.quiet:
            return
        status = "PASSED" if r.passed else "FAILED"
        print(f"{status}  {r.case.name}  ({r.case.dial}, {r.simulated_s:.1f} s simulated)")
        for failure in r.failures:
            print(f"    {failure}")

    try:
        config, results = run_files(
            files, args.config, prove=not args.no_proof, tts_cache=cache, on_result=report
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    failed = [r for r in results if not r.passed]
    missed = 0
    configs = configs_of(results) or [config]
    for cfg in configs:
        where = f" ({cfg.source})" if len(configs) > 1 else ""
        for cov in coverage(cfg, results):
            taken = len(cov.branches) - len(cov.missed)
            line = f"coverage{where}: flow {cov.flow}: {taken}/{len(cov.branches)} branches taken"
            if cov.missed:
                line += "; never taken: " + ", ".join(s.describe() for s in cov.missed)
            missed += len(cov.missed)
            print(line)
    simulated = sum(r.simulated_s for r in results)
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed in "
        f"{time.perf_counter() - t0:.2f} s ({simulated:.0f} s of calls simulated)"
    )
    if failed:
        return 1
    if args.require_coverage and missed:
        print(f"ivr test-flows: {missed} branch(es) taken by no case", file=sys.stderr)
        return 1
    return 0


def add_simulate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a load scenario on the switch in virtual time",
        description=(
            "Place a scenario's calls (scenarios/*.yaml, as for ivr load) against the switch of "
            "--config on a virtual clock, verify every recording, and write report.json and "
            "report.html with the simulated duration and the speed-up. Exit status: 0 when "
            "every objective holds, 1 when one fails, 2 for a bad scenario or config."
        ),
    )
    p.add_argument("scenario", help="a scenario file, or the name of one in scenarios/")
    p.add_argument("--config", type=Path, help="the switch's config (default: the demo)")
    p.add_argument("--calls", type=int, help="override the scenario's number of calls")
    p.add_argument("--concurrency", type=int, help="override the scenario's maximum concurrency")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--report", type=Path, help="folder for report.json and report.html")
    p.add_argument("--no-verify", action="store_true", help="skip checking the recordings")
    p.add_argument("--no-proof", action="store_true", help="skip the compliance proof")


def run_simulate(args: argparse.Namespace) -> int:
    from ivr.config import load_config
    from ivr.errors import InvalidConfig
    from ivr.load.cli import EXIT_UNUSABLE, resolve_scenario
    from ivr.load.errors import InvalidScenario, LoadError
    from ivr.load.report import exit_status, summary_text, write_report
    from ivr.load.scenario import load_scenario
    from ivr.simulate.run import simulate

    overrides = {"calls": args.calls, "concurrency": args.concurrency, "seed": args.seed}
    try:
        scenario = load_scenario(resolve_scenario(args.scenario), overrides)
        config = load_config(args.config)
    except (InvalidScenario, InvalidConfig) as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        sim = simulate(scenario, config, verify=not args.no_verify, prove=not args.no_proof)
    except InvalidConfig as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNUSABLE
    except LoadError as exc:
        print(f"ivr simulate: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    report = sim.report()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = args.report or Path("artifacts") / "simulate" / f"{scenario.name}-{stamp}"
    json_path, html_path = write_report(report, folder)
    print(summary_text(report))
    print(
        f"simulated {sim.simulated_s:.1f} s of the switch's time in {sim.wall_s:.2f} s "
        f"({sim.speed_up:.0f}x real time), seed {sim.seed}"
    )
    print(f"reports: {json_path} {html_path}")
    return exit_status(report)

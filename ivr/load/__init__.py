"""The load runner: scenario replay with many virtual callers, measured and verified.

``ivr load SCENARIO`` (:mod:`ivr.load.cli`) reads a scenario
(:mod:`ivr.load.scenario`), places its calls from several worker processes
(:mod:`ivr.load.runner`, :mod:`ivr.load.worker`), each holding many virtual
callers (:mod:`ivr.load.caller`) on one 20 ms scheduler, measures them
(:mod:`ivr.load.metrics`), checks every call and recording through the API
(:mod:`ivr.load.verify`) and writes ``report.json`` and ``report.html``
(:mod:`ivr.load.report`).
"""

from __future__ import annotations

from ivr.load.errors import InvalidScenario, LoadError, ServerUnusable
from ivr.load.runner import RunResult, Target, run_load
from ivr.load.scenario import Scenario, load_scenario, parse_scenario, plan

__all__ = [
    "InvalidScenario",
    "LoadError",
    "RunResult",
    "Scenario",
    "ServerUnusable",
    "Target",
    "load_scenario",
    "parse_scenario",
    "plan",
    "run_load",
]

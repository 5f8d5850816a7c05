"""Flows: put a new version (validated, proved compliant, kept, applied live) or check a draft.

A flow is validated as the config file is (every problem, with its path in
the flow), then proved compliant for every number that uses it, or alone
(:mod:`ivr.flows.compliance`). Every version is kept, named by content hash;
the flow's head (source ``api``) says which one calls use from the next call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.config import NumberConfig, PromptSource, flow_dependencies
from ivr.flows import Flow, compliance, validate_flow
from ivr.services.context import Context
from ivr.services.errors import Invalid, InvalidFlow, NonCompliant, ServiceError
from ivr.services.prompts import ensure_prompts
from ivr.store import User


@dataclass(frozen=True, slots=True)
class FlowCheck:
    """A draft's verdict: valid, or every problem (validation or compliance)."""

    valid: bool
    problems: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None


def violation_out(v: compliance.Violation) -> dict[str, Any]:
    """A compliance violation as a problem: where, which rule, the path of nodes, in words."""
    return {
        "path": f"numbers.{v.number}" if v.number else "flow",
        "rule": v.rule,
        "nodes": list(v.path),
        "message": str(v),
    }


def _violations(numbers: Mapping[str, NumberConfig], flow: Flow) -> list[compliance.Violation]:
    """The compliance check of a flow for every number that uses it (or alone)."""
    users = {k: v for k, v in numbers.items() if v.flow == flow.id}
    if not users:
        return compliance.check_flow(flow)
    return compliance.check_all(users, {flow.id: flow})


def _strip(path: str, flow_id: str) -> str:
    return path[len(flow_id) + 1 :] if path.startswith(flow_id + ".") else path


def _checked(ctx: Context, flow_id: str, body: dict[str, Any]) -> tuple[Flow, dict[str, Any]]:
    """The flow and the prompts it needs, or :class:`InvalidFlow` / :class:`NonCompliant`."""
    sb = ctx.live()
    flow, problems = validate_flow(flow_id, body, ())
    prompts: dict[str, PromptSource] = {}
    if flow is not None:
        prompts, dep = flow_dependencies(flow, sb.config.prompts_dir, sb.teams, where="")
        problems += dep
    if problems:
        raise InvalidFlow(
            f"flow {flow_id[:64]} has {len(problems)} problem(s)",
            problems=[{"path": _strip(p.path, flow_id), "message": p.message} for p in problems],
        )
    assert flow is not None
    violations = _violations(sb.numbers, flow)
    if violations:
        raise NonCompliant(
            f"flow {flow_id[:64]} breaks {len(violations)} compliance rule(s)",
            problems=[violation_out(v) for v in violations],
        )
    return flow, dict(prompts)


def _valid_id(flow_id: str) -> bool:
    return 1 <= len(flow_id) <= 64 and flow_id.replace("_", "").replace("-", "").isalnum()


async def put_flow(ctx: Context, actor: User, flow_id: str, body: dict[str, Any]) -> Flow:
    """Make ``body`` the flow's current version; a flow that fails its checks is audited."""
    if not _valid_id(flow_id):
        raise Invalid("a flow id has 1 to 64 letters, digits, _ or -", field="flow_id")
    try:
        flow, prompts = _checked(ctx, flow_id, body)
    except ServiceError:
        await ctx.audited(actor, "flows.update", "failed", object_type="flow", object_id=flow_id)
        raise
    await ensure_prompts(ctx, prompts)
    await ctx.store.catalog.save_flow(flow.id, flow.version, flow.definition())
    await ctx.store.catalog.set_flow_head(flow.id, flow.version, source="api")
    ctx.live().set_flow(flow)
    await ctx.audited(
        actor,
        "flows.update",
        "ok",
        object_type="flow",
        object_id=flow_id,
        detail={"version": flow.version},
    )
    return flow


async def check_flow(ctx: Context, actor: User, body: dict[str, Any]) -> FlowCheck:
    """The verdict on a draft (``id`` in the body, default ``draft``); nothing is kept."""
    flow_id = body.pop("id", "draft")
    if not isinstance(flow_id, str):
        raise Invalid("id: must be a string", field="id")
    try:
        flow, _ = _checked(ctx, flow_id, body)
    except (InvalidFlow, NonCompliant) as exc:
        verdict = FlowCheck(False, exc.problems or [])
    else:
        verdict = FlowCheck(True, [], flow.version)
    await ctx.audited(
        actor,
        "flows.check",
        "ok",
        object_type="flow",
        object_id=flow_id[:64],
        detail={"valid": verdict.valid},
    )
    return verdict

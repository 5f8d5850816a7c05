"""Errors of the load runner.

Tree (under :class:`ivr.errors.IvrError`)::

    IvrError
    ├── InvalidConfig
    │   └── InvalidScenario   a scenario file that cannot be used: every problem, with its path
    ├── LoadError             the run could not go on
    │   └── ServerUnusable    the server cannot be reached, refuses to sign in, or answers no call
    └── RequestFailed         one request failed; the run goes on and counts it
        ├── HandshakeFailed   (ivr.load.wsclient) no WebSocket upgrade (also a ConnectionError)
        ├── ProtocolViolation (ivr.load.wsclient) the server broke RFC 6455 (also a ConnectionError)
        └── ApiFailed         (ivr.load.verify) an API read was not answered 200

The command turns :class:`InvalidScenario` and :class:`ServerUnusable` into
exit status 2; an objective that fails is not an error but exit status 1.
"""

from __future__ import annotations

from ivr.errors import InvalidConfig, IvrError, Problem


class InvalidScenario(InvalidConfig):
    """A scenario that cannot be run; lists every problem, each with its path in the file."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        self.args = (f"invalid scenario {source} ({len(problems)} problem(s)):\n{lines}",)

    def __str__(self) -> str:
        return str(self.args[0])


class LoadError(IvrError):
    """A load run that cannot go on."""


class ServerUnusable(LoadError):
    """The server is unreachable, refuses the runner's credentials, or answers no call."""


class RequestFailed(IvrError):
    """One connection or API request of the runner failed; the run goes on and counts it."""

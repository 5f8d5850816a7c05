"""A pytest plugin for flow tests: ``pytest -p ivr.testing`` (docs/simulate.md).

It gives two things:

- a ``switch`` fixture: the switch of the config named by ``--ivr-config``
  (or the ``ivr_config`` ini option; default: the demo), on a virtual clock
  (:class:`ivr.simulate.switch.Switch`), fresh for each test::

      def test_consent(switch):
          call = switch.dial("+15550100")
          call.wait_prompt("consent")
          call.press("1")
          call.wait_connected()
          call.hangup()
          assert call.recorded and call.line == "recorded"

- every YAML case file under a ``flows/tests/`` folder collected as tests,
  one per case (the same cases ``ivr test-flows`` runs), failing with the
  path the call took.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Config, load_config
from ivr.simulate.cases import Case, load_cases, run_case
from ivr.simulate.switch import FlowTestFailure, Switch

__all__ = ["FlowTestFailure", "Switch"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--ivr-config", default=None, help="the config flow tests run against")
    parser.addini("ivr_config", "the config flow tests run against (default: the demo)")


def _config_path(config: pytest.Config) -> Path | None:
    value = config.getoption("--ivr-config") or config.getini("ivr_config")
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture(scope="session")
def ivr_config(request: pytest.FixtureRequest) -> Config:
    """The loaded config the ``switch`` fixture runs."""
    return load_config(_config_path(request.config))


@pytest.fixture
def switch(ivr_config: Config, tmp_path: Path) -> Iterator[Switch]:
    """A fresh switch on a virtual clock, its store in the test's temporary folder."""
    with Switch.open(ivr_config, data_dir=tmp_path / "switch") as sw:
        yield sw


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if (
        file_path.suffix in (".yaml", ".yml")
        and file_path.parent.name == "tests"
        and file_path.parent.parent.name == "flows"
    ):
        return CaseFileItem.from_parent(parent, path=file_path)
    return None


class CaseFileItem(pytest.File):
    """A case file: one test per case."""

    def collect(self) -> Iterator[pytest.Item]:
        loaded = load_cases(self.path)
        if loaded.config is not None:
            config_path: Path | None = (self.path.parent / loaded.config).resolve()
        else:
            config_path = _config_path(self.config)
        for case in loaded.cases:
            yield CaseItem.from_parent(self, name=case.name, case=case, config_path=config_path)


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, config_path: Path | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.config_path = config_path

    def runtest(self) -> None:
        result = run_case(load_config(self.config_path), self.case, str(self.path))
        if not result.passed:
            raise FlowTestFailure("\n".join(result.failures))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, FlowTestFailure):
            return f"case {self.case.name!r} ({self.case.dial}):\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"flow case: {self.case.name}"

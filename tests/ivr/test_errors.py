"""One error tree: every exception of the call path, transport, speech and load is an IvrError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import ivr.errors
from ivr.errors import IvrError

PACKAGES = ("ivr.call", "ivr.transport", "ivr.speech", "ivr.load")
TREE = ivr.errors.__doc__ or ""


def exceptions_of(package: str) -> list[type[BaseException]]:
    """Every exception class defined in a module of ``package``."""
    root = importlib.import_module(package)
    names = [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(root.__path__)]
    found = []
    for name in names:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append(cls)
    return found


def listed(name: str) -> bool:
    return re.search(rf"[─ ]{re.escape(name)}\b", TREE) is not None


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exception_of_the_package_is_in_the_one_tree(package: str) -> None:
    classes = exceptions_of(package)
    assert classes, f"{package} defines no exception: the walk found nothing"
    for cls in classes:
        assert issubclass(cls, IvrError), f"{cls.__module__}.{cls.__name__}"
        assert listed(cls.__name__), f"{cls.__name__} is missing from ivr.errors' tree"
        assert f"({cls.__module__})" in TREE or cls.__module__ == "ivr.errors", cls


def test_every_error_of_ivr_errors_is_in_its_tree() -> None:
    for _, cls in inspect.getmembers(ivr.errors, inspect.isclass):
        if issubclass(cls, IvrError):
            assert listed(cls.__name__), cls.__name__

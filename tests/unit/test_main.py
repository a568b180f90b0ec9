"""The composition root lists every part: a route, service or subcommand that exists but is not
wired would silently be missing from a running mergebot."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import mergebot
from mergebot import main
from mergebot.integrator import integrator_service
from mergebot.processor import processor_service


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(mergebot.__path__, prefix="mergebot.")
        if not info.ispkg and info.name not in {"mergebot.__main__", "mergebot.main"}
    ]


def test_every_route_module_is_added_to_the_app() -> None:
    found = set()
    for name in _modules():
        setup = getattr(importlib.import_module(name), "setup", None)
        if inspect.isfunction(setup) and setup.__module__ == name:
            found.add(setup)
    assert found == set(main.ROUTES)


def test_every_background_service_runs_in_the_worker() -> None:
    found = set()
    for name in _modules():
        module = importlib.import_module(name)
        found |= {
            value
            for attr, value in vars(module).items()
            if attr.endswith("_service")
            and inspect.iscoroutinefunction(value)
            and value.__module__ == name
        }
    assert found == set(main.SERVICES)


def test_the_integrator_listens_before_the_processor_announces() -> None:
    order = list(main.SERVICES)
    assert order.index(integrator_service) < order.index(processor_service)


def test_every_subcommand_module_is_a_command() -> None:
    wired = {command.help for command in main.COMMANDS.values()}
    modules = [n for n in _modules() if n.startswith("mergebot.commands.")]
    helps = {getattr(importlib.import_module(n), "HELP", None) for n in modules} - {None}
    assert helps == wired
    assert len(main.COMMANDS) == len(helps)

"""The chart and the operator configure services only through names the services' configuration models
know: every ``--flag`` in a container's args is a flag of that command's model and every ``RTVOICE_*``
variable set on the container is one the model reads (``rtvoice.core.config``). A renamed flag or a
misspelt variable fails here instead of being ignored in a cluster."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtvoice.core.config import ServiceSettings
from rtvoice.core.settings import parse_settings
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import AgentRef, render_deployment
from tests.operator.test_operator_chart import OVERRIDES
from tests.support.kube import render_chart

# The container's first argument is the rtvoice subcommand; its area's cli module lists its model.
CLI_MODULES = {
    "recorder": "rtvoice.recorder.cli",
    "bridge": "rtvoice.bridge.cli",
    "ingress": "rtvoice.ingress.cli",
    "local-realtime": "rtvoice.localrt.cli",
    "operator": "rtvoice_operator.cli",
}
# Commands whose configuration is a model (the others still declare argparse flags by hand).
MODELLED = {"recorder", "sessions", "bridge", "local-realtime", "ingress", "operator"}


def settings_of(command: str) -> type[ServiceSettings] | None:
    """The configuration model of ``rtvoice <command>``, or ``None`` when it has none yet."""
    module = importlib.import_module(CLI_MODULES[command])
    models: dict[str, type[ServiceSettings]] = getattr(module, "SETTINGS", {})
    return models.get(command)


def _containers(helmlite: Path, tmp_path: Path) -> list[dict[str, Any]]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(OVERRIDES))  # every optional part of the chart switched on
    docs = render_chart(helmlite) + render_chart(helmlite, "-f", str(values))
    for provider in ("openai", "local"):
        spec = parse_settings({"provider": provider, "credentials": {"secretRef": {"name": "k"}}})
        docs.append(render_deployment(AgentRef("a", "ns", "uid"), spec, OperatorConfig()))
    return [
        c
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


def test_models_are_found_for_the_modelled_commands() -> None:
    for command in MODELLED & set(CLI_MODULES):
        assert settings_of(command) is not None, command


def test_container_flags_and_variables_are_known_to_the_models(helmlite: Path, tmp_path: Path) -> None:
    checked: set[str] = set()
    for container in _containers(helmlite, tmp_path):
        command, *args = container["args"]
        model = settings_of(command)
        if model is None:
            continue
        checked.add(command)
        unknown_flags = sorted({a.split("=", 1)[0] for a in args if a.startswith("-")} - model.flags())
        assert unknown_flags == [], f"`rtvoice {command}` has no flags {unknown_flags}"
        names = {e["name"] for e in container.get("env", []) if e["name"].startswith("RTVOICE_")}
        unknown_env = sorted(names - model.all_env_names())
        assert unknown_env == [], f"`rtvoice {command}` reads no variables {unknown_env}"
        if names:
            checked.add(f"{command}:env")
    assert MODELLED & set(CLI_MODULES) <= checked
    assert {"recorder:env", "operator:env"} <= checked  # the chart sets variables on these containers


@pytest.mark.parametrize("command", sorted(MODELLED))
def test_every_flag_has_help_with_its_variables(command: str) -> None:
    module = CLI_MODULES.get(command, "rtvoice.recorder.cli")
    models: dict[str, type[ServiceSettings]] = getattr(importlib.import_module(module), "SETTINGS", {})
    model = models[command]
    for name, field in model.cli_fields():
        assert field.description, f"{command}: field {name} has no description for --help"
    assert all(n.startswith("RTVOICE_") or n.startswith("AWS_") for n in model.all_env_names())

"""What the operator judges beyond the CRD's structural schema, reported as ``ConfigValid=False``.

The API server already enforces types, enums, bounds and patterns (the schema comes from the same
pydantic model). The provider and cross-field rules (voices, temperature ranges, turn detection, tool
names, owned override paths) belong to the settings themselves: :func:`rtvoice.core.rules.settings_problems`
over the catalog in :mod:`rtvoice.core.catalog`. Added here are the two rules only a cluster has: the
bridge Service name derived from the agent name, and the API key Secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rtvoice.core.addresses import MAX_AGENT_NAME_LENGTH, bridge_headless_service_name
from rtvoice.core.rules import settings_problems
from rtvoice.core.settings import AgentSettings

_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``reason`` is a CamelCase condition reason, ``message`` names the field."""

    reason: str
    message: str


def _name_problem(agent_name: str) -> Problem | None:
    bridge = bridge_headless_service_name(agent_name)  # the longest name of the agent's children
    if len(bridge) <= 63 and _DNS_1035_LABEL.match(bridge):
        return None
    return Problem(
        "InvalidAgentName",
        f"the bridge Service name {bridge!r} must be a DNS-1035 label of at most 63 characters: "
        f"use lowercase letters, digits and '-' and at most {MAX_AGENT_NAME_LENGTH} characters for the "
        "agent name",
    )


def _credentials_problem(settings: AgentSettings) -> Problem | None:
    if settings.provider == "local" or settings.credentials.secret_ref is not None or settings.base_url:
        return None
    return Problem(
        "MissingCredentials",
        f"provider {settings.provider} needs spec.credentials.secretRef: a Secret with the API key",
    )


def semantic_problems(agent_name: str, settings: AgentSettings) -> list[Problem]:
    """Every rule ``settings`` (parsed with ``parse_settings``, schema only) breaks on a cluster, in a
    fixed order: the agent name, the settings rules, the credentials. Empty list = valid; never raises."""
    problems = [Problem(p.reason, p.message) for p in settings_problems(settings)]
    name = _name_problem(agent_name)
    creds = _credentials_problem(settings)
    return ([name] if name else []) + problems + ([creds] if creds else [])

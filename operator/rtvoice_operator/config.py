"""Operator-wide settings: what every agent's bridge Deployment gets that is not in the VoiceAgent.

Set by ``rtvoice operator`` flags, each defaulting to an environment variable (the Helm chart sets the
environment), so ``kopf run`` / ``kopf.testing.KopfRunner`` and the CLI build the same config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BRIDGE_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
DEFAULT_ENGINE_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "1536Mi"},
}

ENV_BRIDGE_IMAGE = "RTVOICE_BRIDGE_IMAGE"
ENV_PULL_POLICY = "RTVOICE_IMAGE_PULL_POLICY"
ENV_RECORDER = "RTVOICE_RECORDER_ADDRESS"
ENV_GRACE = "RTVOICE_TERMINATION_GRACE_S"
ENV_PRESTOP = "RTVOICE_PRESTOP_DELAY_S"
ENV_BRIDGE_RESOURCES = "RTVOICE_BRIDGE_RESOURCES"
ENV_ENGINE_RESOURCES = "RTVOICE_ENGINE_RESOURCES"
ENV_PULL_SECRETS = "RTVOICE_IMAGE_PULL_SECRETS"


class OperatorConfigError(ValueError):
    """An operator setting (flag or environment variable) has a bad value; the message names it."""


@dataclass(frozen=True)
class OperatorConfig:
    """Settings applied to every rendered bridge.

    ``recorder_address`` is ``host:port`` of the recorder's gRPC Service; ``termination_grace_s`` is how
    long (seconds) a stopping bridge may spend draining live calls; ``prestop_delay_s`` (seconds) keeps a
    terminating pod serving while its endpoint is removed from the Service; resources are Kubernetes
    ``ResourceRequirements`` dicts.
    """

    bridge_image: str = "rtvoice:latest"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    recorder_address: str = "rtvoice-recorder.rtvoice.svc.cluster.local:50052"
    termination_grace_s: int = 300
    prestop_delay_s: int = 5
    bridge_resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BRIDGE_RESOURCES))
    engine_resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ENGINE_RESOURCES))

    def __post_init__(self) -> None:
        if not self.bridge_image:
            raise OperatorConfigError("bridge image must not be empty")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise OperatorConfigError(
                f"image pull policy {self.image_pull_policy!r}: expected Always, IfNotPresent or Never"
            )
        host, _, port = self.recorder_address.rpartition(":")
        if not host or not port.isdigit():
            raise OperatorConfigError(f"recorder address {self.recorder_address!r}: expected HOST:PORT")
        if not 1 <= self.termination_grace_s <= 86400:
            raise OperatorConfigError("termination grace must be 1..86400 s")
        if not 0 <= self.prestop_delay_s < self.termination_grace_s:
            raise OperatorConfigError("pre-stop delay must be >= 0 s and shorter than the termination grace")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> OperatorConfig:
        """Build from ``RTVOICE_*`` variables (see module constants); ``overrides`` (not None) win.

        Raises :class:`OperatorConfigError` for a malformed value (bad JSON, non-integer, bad policy).
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get(ENV_BRIDGE_IMAGE):
            values["bridge_image"] = env[ENV_BRIDGE_IMAGE]
        if env.get(ENV_PULL_POLICY):
            values["image_pull_policy"] = env[ENV_PULL_POLICY]
        if env.get(ENV_PULL_SECRETS):
            values["image_pull_secrets"] = tuple(s for s in env[ENV_PULL_SECRETS].split(",") if s)
        if env.get(ENV_RECORDER):
            values["recorder_address"] = env[ENV_RECORDER]
        for key, var in (("termination_grace_s", ENV_GRACE), ("prestop_delay_s", ENV_PRESTOP)):
            if env.get(var):
                values[key] = _int(var, env[var])
        for key, var in (
            ("bridge_resources", ENV_BRIDGE_RESOURCES),
            ("engine_resources", ENV_ENGINE_RESOURCES),
        ):
            if env.get(var):
                values[key] = parse_resources(var, env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OperatorConfigError(f"{name}={text!r}: expected an integer") from None


def parse_resources(name: str, text: str) -> dict[str, Any]:
    """Parse a JSON ``ResourceRequirements`` object (``{"requests": {...}, "limits": {...}}``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise OperatorConfigError(f"{name}: not JSON ({err.msg})") from None
    if not isinstance(value, dict) or not set(value) <= {"requests", "limits"}:
        raise OperatorConfigError(f"{name}: expected an object with 'requests' and/or 'limits'")
    return value

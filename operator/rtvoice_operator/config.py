"""Operator-wide settings: what every agent's bridge Deployment gets that is not in the VoiceAgent.

One model (:class:`OperatorConfig`, see :mod:`rtvoice.core.config`) gives the ``rtvoice operator`` flags,
the ``RTVOICE_*`` variables the Helm chart sets (names below) and the checks, so ``kopf run`` /
``kopf.testing.KopfRunner`` (:meth:`OperatorConfig.from_env`) and the CLI build the same config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from rtvoice.core.addresses import DEFAULT_CLUSTER_DOMAIN
from rtvoice.core.config import ConfigError, Opt, ServiceSettings, comma_list
from rtvoice.core.metrics import CHART_METRICS_PORT

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
ENV_CLUSTER_DOMAIN = "RTVOICE_CLUSTER_DOMAIN"
ENV_AUTOSCALER = "RTVOICE_AUTOSCALER"
ENV_KEDA_PROMETHEUS = "RTVOICE_KEDA_PROMETHEUS_ADDRESS"
ENV_METRICS_PORT = "RTVOICE_METRICS_PORT"
ENV_INTERNAL_TOKEN_SECRET = "RTVOICE_INTERNAL_TOKEN_SECRET"
ENV_NETWORK_POLICY = "RTVOICE_NETWORK_POLICY"
ENV_INGRESS_NAMESPACE = "RTVOICE_INGRESS_NAMESPACE"
ENV_INGRESS_POD_LABELS = "RTVOICE_INGRESS_POD_LABELS"
ENV_MONITORING_NAMESPACE = "RTVOICE_MONITORING_NAMESPACE"

AUTOSCALERS = ("hpa", "keda")
DEFAULT_METRICS_PORT = CHART_METRICS_PORT
DEFAULT_INGRESS_POD_LABELS: dict[str, str] = {
    "app.kubernetes.io/name": "rtvoice-ingress",
    "app.kubernetes.io/component": "ingress",
}
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class OperatorConfigError(ConfigError):
    """An operator setting (flag or environment variable) has a bad value; the message names it."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError("expected true or false")
    return lowered in ("true", "1")


def _labels(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("expected a JSON object of label names to string values")
    return value


def _resources(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(value, dict) or not set(value) <= {"requests", "limits"}:
        raise ValueError("expected an object with 'requests' and/or 'limits'")
    return value


def parse_resources(name: str, text: str) -> dict[str, Any]:
    """Parse a JSON ``ResourceRequirements`` object (``{"requests": {...}, "limits": {...}}``); raises
    :class:`OperatorConfigError` naming ``name``."""
    try:
        return _resources(text)
    except ValueError as err:
        raise OperatorConfigError(f"{name}: {err}") from None


def _env(name: str, *, cli: bool = False, **opt: Any) -> Opt:
    """A field read from ``$name`` (the chart's variable); ``cli``: also an ``rtvoice operator`` flag."""
    return Opt(own_env=False, env=(name,), cli=cli, **opt)


class OperatorConfig(ServiceSettings):
    """Settings applied to every rendered bridge.

    ``recorder_address`` is ``host:port`` of the recorder's gRPC Service; ``termination_grace_s`` is how
    long (seconds) a stopping bridge may spend draining live calls unless the agent sets
    ``terminationGracePeriodSeconds``; ``prestop_delay_s`` (seconds) keeps a terminating pod serving while
    its endpoint is removed from the Services; resources are Kubernetes ``ResourceRequirements`` dicts.
    ``cluster_domain`` is the cluster's DNS domain (for ``status.bridgeAddress``). ``autoscaler`` picks
    what an agent's ``autoscaling`` renders: ``hpa`` (autoscaling/v2 HorizontalPodAutoscaler on a Pods
    metric served by a metrics adapter) or ``keda`` (keda.sh/v1alpha1 ScaledObject querying the Prometheus
    at ``keda_prometheus_address``). ``metrics_port`` is where the bridge serves ``/metrics``.
    ``internal_token_secret`` names a Secret (key ``token``) that must exist in every agent namespace;
    empty = no internal token. With ``network_policy`` each agent gets a NetworkPolicy admitting the
    ingress pods (``ingress_namespace`` + ``ingress_pod_labels``) to the gRPC port and
    ``monitoring_namespace`` (empty = any namespace) to the metrics port.

    Constructing it directly takes the given values only (no environment); :meth:`from_env` and
    :meth:`from_args` add the variables (and flags). Invalid values raise :class:`OperatorConfigError`
    from those, a pydantic ``ValidationError`` (also a ``ValueError``) from direct construction.
    """

    service: ClassVar[str] = "operator"
    config_error: ClassVar[type[ConfigError]] = OperatorConfigError
    env_on_init: ClassVar[bool] = False  # direct construction: the values given, nothing else
    model_config = SettingsConfigDict(extra="forbid", validate_default=True, frozen=True)

    bridge_image: Annotated[str, _env(ENV_BRIDGE_IMAGE, cli=True, metavar="IMAGE")] = Field(
        "rtvoice:latest", description="image of the bridge pods"
    )
    image_pull_policy: Annotated[str, _env(ENV_PULL_POLICY, cli=True, metavar="POLICY")] = Field(
        "IfNotPresent", description="of the bridge pods: Always, IfNotPresent or Never"
    )
    image_pull_secrets: Annotated[tuple[str, ...], _env(ENV_PULL_SECRETS, parse=comma_list)] = Field(
        (), description="image pull Secrets of the bridge pods (comma list)"
    )
    recorder_address: Annotated[str, _env(ENV_RECORDER, cli=True, flag="--recorder", metavar="HOST:PORT")] = (
        Field(
            "rtvoice-recorder.rtvoice.svc.cluster.local:50052",
            description="recorder gRPC address the bridges tee to",
        )
    )
    termination_grace_s: Annotated[int, _env(ENV_GRACE, cli=True, metavar="SECONDS")] = Field(
        300, description="time a stopping bridge gets to drain live calls, s"
    )
    prestop_delay_s: Annotated[int, _env(ENV_PRESTOP, cli=True, metavar="SECONDS")] = Field(
        5, description="pre-stop sleep while endpoints update, s"
    )
    bridge_resources: Annotated[
        dict[str, Any], _env(ENV_BRIDGE_RESOURCES, cli=True, parse=_resources, metavar="JSON")
    ] = Field(
        default_factory=lambda: dict(DEFAULT_BRIDGE_RESOURCES),
        description="bridge container ResourceRequirements",
    )
    engine_resources: Annotated[
        dict[str, Any], _env(ENV_ENGINE_RESOURCES, cli=True, parse=_resources, metavar="JSON")
    ] = Field(
        default_factory=lambda: dict(DEFAULT_ENGINE_RESOURCES),
        description="offline-engine sidecar ResourceRequirements",
    )
    cluster_domain: Annotated[str, _env(ENV_CLUSTER_DOMAIN, cli=True, metavar="DOMAIN")] = Field(
        DEFAULT_CLUSTER_DOMAIN, description="the cluster's DNS domain, for status.bridgeAddress"
    )
    autoscaler: Annotated[str, _env(ENV_AUTOSCALER, cli=True, metavar="KIND")] = Field(
        "hpa", description="what spec.autoscaling renders: hpa or keda (a KEDA ScaledObject)"
    )
    keda_prometheus_address: Annotated[str, _env(ENV_KEDA_PROMETHEUS)] = Field(
        "", description="http(s)://HOST:PORT of the Prometheus KEDA queries"
    )
    metrics_port: Annotated[int, _env(ENV_METRICS_PORT)] = Field(
        DEFAULT_METRICS_PORT, description="port of the bridges' /metrics"
    )
    internal_token_secret: Annotated[str, _env(ENV_INTERNAL_TOKEN_SECRET)] = Field(
        "", description="Secret (key token) holding the internal token in every agent namespace"
    )
    network_policy: Annotated[bool, _env(ENV_NETWORK_POLICY, parse=_bool)] = Field(
        False, description="give each agent a NetworkPolicy"
    )
    ingress_namespace: Annotated[str, _env(ENV_INGRESS_NAMESPACE)] = Field(
        "rtvoice", description="namespace of the ingress pods the policies admit"
    )
    ingress_pod_labels: Annotated[dict[str, str], _env(ENV_INGRESS_POD_LABELS, parse=_labels)] = Field(
        default_factory=lambda: dict(DEFAULT_INGRESS_POD_LABELS), description="labels of the ingress pods"
    )
    monitoring_namespace: Annotated[str, _env(ENV_MONITORING_NAMESPACE)] = Field(
        "", description="namespace allowed to scrape the bridges (empty = any)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.bridge_image:
            raise ValueError("bridge image must not be empty")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"image pull policy {self.image_pull_policy!r}: expected Always, IfNotPresent or Never"
            )
        host, _, port = self.recorder_address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"recorder address {self.recorder_address!r}: expected HOST:PORT")
        if not 1 <= self.termination_grace_s <= 86400:
            raise ValueError("termination grace must be 1..86400 s")
        if not 0 <= self.prestop_delay_s < self.termination_grace_s:
            raise ValueError("pre-stop delay must be >= 0 s and shorter than the termination grace")
        if not _DNS_NAME.match(self.cluster_domain):
            raise ValueError(f"cluster domain {self.cluster_domain!r}: expected e.g. cluster.local")
        if self.autoscaler not in AUTOSCALERS:
            raise ValueError(f"autoscaler {self.autoscaler!r}: expected hpa or keda")
        if self.autoscaler == "keda" and not self.keda_prometheus_address.startswith(("http://", "https://")):
            raise ValueError(
                f"autoscaler keda needs ${ENV_KEDA_PROMETHEUS} (http(s)://HOST:PORT of Prometheus)"
            )
        if not 1 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics port {self.metrics_port}: expected 1..65535")
        if self.network_policy and not (self.ingress_namespace and self.ingress_pod_labels):
            raise ValueError("network policies need the ingress namespace and pod labels")
        return self

    def grace_s(self, agent_grace_s: int | None) -> int:
        """The termination grace (s) of an agent's pods: its own, else the operator's default."""
        return agent_grace_s if agent_grace_s is not None else self.termination_grace_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> OperatorConfig:
        """Build from ``RTVOICE_*`` variables (see module constants); ``overrides`` (not None) win.

        Raises :class:`OperatorConfigError` for a malformed value (bad JSON, non-integer, bad policy).
        """
        return cls.from_args(None, environ=env, **overrides)

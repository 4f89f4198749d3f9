"""Pure functions: the network side of an agent's bridge — its two Services and its NetworkPolicy.

- ``rtvoice-bridge-{name}`` (ClusterIP): one stable virtual IP for simple clients (grpcurl, tests).
  kube-proxy balances per TCP connection, so one long-lived HTTP/2 channel pins every call to one pod.
- ``rtvoice-bridge-{name}-headless`` (``clusterIP: None``, ``publishNotReadyAddresses: false``): its DNS
  name resolves to every *ready* bridge pod, so a draining pod (readiness NOT_SERVING) leaves the answer
  and a client with ``dns:///`` + ``round_robin`` or its own placement spreads calls over pods. Its gRPC
  target is ``status.bridgeAddress`` (:func:`rtvoice.core.addresses.bridge_address`).
- NetworkPolicy ``rtvoice-bridge-{name}``: only the ingress pods reach the gRPC port; the metrics port
  is open to the monitoring namespace (any namespace when none is configured). Egress stays open (the
  bridge dials the provider, the recorder and tool endpoints).
"""

from __future__ import annotations

from typing import Any

from rtvoice.core.addresses import bridge_headless_service_name
from rtvoice_operator import BRIDGE_PORT
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import AgentRef, child_metadata, selector_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every Namespace from Kubernetes 1.21


def _grpc_port() -> dict[str, Any]:
    return {
        "name": "grpc",
        "port": BRIDGE_PORT,
        "targetPort": "grpc",
        "protocol": "TCP",
        "appProtocol": "grpc",
    }


def render_service(agent: AgentRef) -> dict[str, Any]:
    """ClusterIP Service ``rtvoice-bridge-{name}`` exposing the bridge's gRPC port 50051."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(agent),
        "spec": {"type": "ClusterIP", "selector": selector_labels(agent.name), "ports": [_grpc_port()]},
    }


def render_headless_service(agent: AgentRef) -> dict[str, Any]:
    """Headless Service ``rtvoice-bridge-{name}-headless``: one DNS A record per ready bridge pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(agent, bridge_headless_service_name(agent.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": False,
            "selector": selector_labels(agent.name),
            "ports": [_grpc_port()],
        },
    }


def render_network_policy(agent: AgentRef, cfg: OperatorConfig) -> dict[str, Any]:
    """NetworkPolicy admitting the ingress pods to ``grpc`` and monitoring to ``metrics`` (ingress only).

    Kubelet probes (exec readiness, TCP liveness) come from the node, which common CNIs (Calico, Cilium,
    kube-router) admit regardless of policies. ``kubernetes.io/metadata.name`` is on every Namespace from
    Kubernetes 1.21; older clusters must add that label to the ingress and monitoring namespaces.
    """
    ingress_from = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: cfg.ingress_namespace}},
        "podSelector": {"matchLabels": dict(cfg.ingress_pod_labels)},
    }
    metrics_rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": "metrics"}]}
    if cfg.monitoring_namespace:
        metrics_rule["from"] = [
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: cfg.monitoring_namespace}}}
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(agent),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(agent.name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [ingress_from], "ports": [{"protocol": "TCP", "port": "grpc"}]},
                metrics_rule,
            ],
        },
    }

"""Pure functions: the autoscaler of an agent with ``spec.autoscaling`` — scale bridge pods on live calls.

The bridge exports the gauge ``rtvoice_bridge_active_sessions`` (live calls of the pod) on its metrics
port. Two renderings, chosen by the operator's ``autoscaler`` setting:

- ``hpa``: an ``autoscaling/v2`` HorizontalPodAutoscaler with a ``Pods`` metric of that name and an
  ``AverageValue`` target of ``targetSessionsPerPod`` — desired pods = ceil(sum of live calls / target).
  The metric reaches the HPA through the custom metrics API (e.g. prometheus-adapter; docs/kubernetes.md
  has the rule).
- ``keda``: a KEDA ``ScaledObject`` (``keda.sh/v1alpha1``) with a ``prometheus`` trigger whose query sums
  the gauge over the agent's pods, ``threshold`` = ``targetSessionsPerPod`` (metricType AverageValue), so
  KEDA computes the same ceil(sum / target).

Scale-down is slow on purpose (one pod per minute after a 5-minute window): a removed pod drains its
calls for up to its termination grace.
"""

from __future__ import annotations

from typing import Any

from rtvoice.core.metrics import active_sessions_metric
from rtvoice.core.settings import AgentSettings, Autoscaling
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import AgentRef, child_metadata, child_name

ACTIVE_SESSIONS_METRIC = active_sessions_metric("bridge")
HPA_API_VERSION = "autoscaling/v2"
KEDA_API_VERSION = "keda.sh/v1alpha1"
SCALE_DOWN_WINDOW_S = 300
KEDA_POLLING_INTERVAL_S = 15


def _behavior() -> dict[str, Any]:
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 60},
                {"type": "Percent", "value": 100, "periodSeconds": 60},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
    }


def _target(agent: AgentRef) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": child_name(agent.name)}


def render_hpa(agent: AgentRef, scaling: Autoscaling) -> dict[str, Any]:
    """HorizontalPodAutoscaler ``rtvoice-bridge-{name}`` (autoscaling/v2) on the live-calls Pods metric."""
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(agent),
        "spec": {
            "scaleTargetRef": _target(agent),
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": ACTIVE_SESSIONS_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(scaling.target_sessions_per_pod),
                        },
                    },
                }
            ],
            "behavior": _behavior(),
        },
    }


def sessions_query(agent: AgentRef) -> str:
    """PromQL: live calls summed over the agent's bridge pods (``namespace``/``pod`` target labels, as the
    usual Kubernetes pod scrape configs set them; pods are named ``{deployment}-{hash}-{suffix}``)."""
    pods = f"{child_name(agent.name)}-[a-z0-9]+-[a-z0-9]+"
    return f'sum({ACTIVE_SESSIONS_METRIC}{{namespace="{agent.namespace}",pod=~"{pods}"}}) or vector(0)'


def render_scaled_object(agent: AgentRef, scaling: Autoscaling, cfg: OperatorConfig) -> dict[str, Any]:
    """KEDA ScaledObject ``rtvoice-bridge-{name}``: a prometheus trigger on :func:`sessions_query`."""
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": child_metadata(agent),
        "spec": {
            "scaleTargetRef": _target(agent),
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": KEDA_POLLING_INTERVAL_S,
            "cooldownPeriod": SCALE_DOWN_WINDOW_S,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": cfg.keda_prometheus_address,
                        "query": sessions_query(agent),
                        "threshold": str(scaling.target_sessions_per_pod),
                    },
                }
            ],
        },
    }


def render_autoscaler(agent: AgentRef, settings: AgentSettings, cfg: OperatorConfig) -> dict[str, Any] | None:
    """The agent's autoscaler per ``cfg.autoscaler``, or None without ``spec.autoscaling``."""
    if settings.autoscaling is None:
        return None
    if cfg.autoscaler == "keda":
        return render_scaled_object(agent, settings.autoscaling, cfg)
    return render_hpa(agent, settings.autoscaling)


def autoscaler_kinds(cfg: OperatorConfig) -> tuple[tuple[str, str], ...]:
    """``(apiVersion, kind)`` of every autoscaler the operator may have created under ``cfg`` (to remove
    when an agent drops ``spec.autoscaling``, or after a switch from hpa to keda)."""
    hpa = (HPA_API_VERSION, "HorizontalPodAutoscaler")
    return (hpa, (KEDA_API_VERSION, "ScaledObject")) if cfg.autoscaler == "keda" else (hpa,)

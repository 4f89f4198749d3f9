"""rtvoice Kubernetes operator: ``VoiceAgent`` custom resources become running realtime bridges.

Modules, one job each: :mod:`.crd` (the CRD generated from the settings model), :mod:`.render`,
:mod:`.render_net`, :mod:`.render_scale` and :mod:`.children` (pure functions rendering a bridge's
ConfigMap, Deployment, Services, NetworkPolicy and autoscaler), :mod:`.validate` (rules the CRD schema
cannot express), :mod:`.conditions` (status conditions), :mod:`.kubeapi` (a small async Kubernetes API
client doing server-side apply), :mod:`.reconcile` (the one idempotent reconcile), :mod:`.handlers` (thin
kopf handlers), :mod:`.health` (the gRPC health probe) and :mod:`.cli` (``rtvoice operator|crd|health``).
"""

from __future__ import annotations

from rtvoice.core.addresses import BRIDGE_PORT
from rtvoice.core.settings import API_GROUP, API_VERSION, KIND

PLURAL = "voiceagents"
SINGULAR = "voiceagent"
SHORT_NAMES = ("va",)
CRD_NAME = f"{PLURAL}.{API_GROUP}"
AGENT_API_VERSION = f"{API_GROUP}/{API_VERSION}"
FIELD_MANAGER = "rtvoice-operator"

# Labels on every child; the selector uses NAME_LABEL + AGENT_LABEL (both immutable for an agent).
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
AGENT_LABEL = f"{API_GROUP}/agent"
SETTINGS_HASH_ANNOTATION = f"{API_GROUP}/settings-hash"

__all__ = [
    "AGENT_API_VERSION",
    "AGENT_LABEL",
    "API_GROUP",
    "API_VERSION",
    "BRIDGE_PORT",
    "COMPONENT_LABEL",
    "CRD_NAME",
    "FIELD_MANAGER",
    "INSTANCE_LABEL",
    "KIND",
    "MANAGED_BY_LABEL",
    "NAME_LABEL",
    "PART_OF_LABEL",
    "PLURAL",
    "SETTINGS_HASH_ANNOTATION",
    "SHORT_NAMES",
    "SINGULAR",
]

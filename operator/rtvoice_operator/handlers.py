"""kopf handlers: thin triggers of :meth:`rtvoice_operator.reconcile.Reconciler.reconcile`.

Run with ``rtvoice operator`` (or ``kopf run -m rtvoice_operator.handlers --standalone``). VoiceAgent
create/update/resume and every event on a child the operator manages (a Deployment, ConfigMap, Service or
NetworkPolicy labelled ``app.kubernetes.io/managed-by: rtvoice-operator``) reconcile the owning agent, so
drift in a child is reverted and the Deployment's readiness reaches the agent's ``Ready`` condition.
Autoscalers are not watched (an HPA's status moves every few seconds); drift in one is reverted at the
agent's next reconcile.

kopf keeps its own bookkeeping in ``status.kopf`` (not annotations), so the operator needs no write
access to VoiceAgents beyond their ``status`` subresource.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from rtvoice_operator import AGENT_LABEL, API_GROUP, API_VERSION, MANAGED_BY_LABEL, PLURAL
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.kubeapi import KubeApi
from rtvoice_operator.reconcile import Reconciler

Logger = logging.Logger | logging.LoggerAdapter[Any]
CHILD_LABELS: dict[str, Any] = {MANAGED_BY_LABEL: "rtvoice-operator", AGENT_LABEL: kopf.PRESENT}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Status-based kopf storage, quiet k8s Events, and the reconciler (config from ``memo.config``,
    which ``rtvoice operator`` sets, else from ``RTVOICE_*`` environment variables)."""
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandled")
    settings.posting.level = logging.WARNING
    # With exact namespace names (``rtvoice operator --namespace NAME``) kopf needs no namespace listing:
    # it watches those namespaces at once instead of retrying a forbidden list for about a minute.
    settings.scanning.disabled = bool(memo.get("exact_namespaces"))
    config = memo.get("config") or OperatorConfig.from_env()
    memo["reconciler"] = Reconciler(KubeApi.connect(), config)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client."""
    reconciler = memo.get("reconciler")
    if reconciler is not None:
        await reconciler.api.aclose()


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
async def agent_changed(name: str, namespace: str | None, memo: Any, logger: Logger, **_: Any) -> None:
    """A VoiceAgent appeared, changed, or was found at start-up: reconcile it (kopf retries failures)."""
    if namespace:
        await memo["reconciler"].reconcile(namespace, name, logger)


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("v1", "configmaps", labels=CHILD_LABELS)
@kopf.on.event("v1", "services", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILD_LABELS)
async def child_event(body: kopf.Body, memo: Any, logger: Logger, **_: Any) -> None:
    """A managed child changed, was deleted, or its status moved: reconcile its agent."""
    namespace = body.metadata.namespace
    agent = body.metadata.labels.get(AGENT_LABEL)
    if namespace and agent:
        await memo["reconciler"].reconcile(namespace, agent, logger)

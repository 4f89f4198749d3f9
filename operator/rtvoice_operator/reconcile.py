"""The one idempotent reconcile of a VoiceAgent: read it, judge its settings, apply its children,
write its status.

Every trigger (create, update, resume, an event on a child) calls :meth:`Reconciler.reconcile` with the
agent's namespace and name; it always starts from the object as stored now, so the order or number of
triggers does not matter. Children are applied with server-side apply under the ``rtvoice-operator``
field manager (forced), which also reverts drift: fields another manager changed go back. Only
``status`` is written on the VoiceAgent, through its ``/status`` subresource, and only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from rtvoice.core.addresses import bridge_address
from rtvoice.core.settings import AgentSettings, SettingsError, parse_settings
from rtvoice_operator import AGENT_API_VERSION, FIELD_MANAGER, KIND
from rtvoice_operator.children import render_children, stale_kinds
from rtvoice_operator.conditions import build_status, status_changed, utc_now
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.kubeapi import KubeApi, KubeApiError
from rtvoice_operator.render import AgentRef, child_name
from rtvoice_operator.validate import Problem, semantic_problems

REPLICAS_HANDOVER_MANAGER = "rtvoice-operator-replicas-handover"


def owns_replicas(deployment: dict[str, Any], manager: str) -> bool:
    """Whether ``manager`` holds ``spec.replicas`` of ``deployment`` by server-side apply (managedFields)."""
    for entry in deployment.get("metadata", {}).get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and "f:replicas" in spec:
            return True
    return False


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: ``applied`` kinds, the ``status`` it computed, ``problems`` found."""

    applied: tuple[str, ...]
    status: dict[str, Any]
    problems: tuple[Problem, ...]


class Reconciler:
    """Reconciles VoiceAgents through ``api`` with operator-wide ``config``.

    One asyncio lock per agent serialises concurrent triggers for the same agent (an update and a child
    event arriving together); different agents reconcile in parallel.
    """

    def __init__(self, api: KubeApi, config: OperatorConfig) -> None:
        self.api = api
        self.config = config
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    async def _apply_children(
        self, agent: AgentRef, settings: AgentSettings, applied: list[str]
    ) -> dict[str, Any] | None:
        """Apply every child in order (appending each kind to ``applied``), remove autoscalers the spec
        no longer asks for; returns the Deployment as stored. Raises KubeApiError at the first failure."""
        children = render_children(agent, settings, self.config)
        if settings.autoscaling is not None:
            await self._hand_replicas_over(agent)
        deployment = None
        for child in children:
            stored = await self.api.apply(child)
            applied.append(child["kind"])
            if child["kind"] == "Deployment":
                deployment = stored
        for api_version, kind in stale_kinds(children, self.config):
            await self.api.delete(api_version, kind, agent.namespace, child_name(agent.name))
        return deployment

    async def _hand_replicas_over(self, agent: AgentRef) -> None:
        """Before the first apply without ``spec.replicas`` (autoscaling just switched on), give the field
        to a manager that never applies again: released by its only owner, the API server would reset it
        to 1 and drop all but one pod until the autoscaler's next sync. No-op once handed over."""
        current = await self.api.get("apps/v1", "Deployment", agent.namespace, child_name(agent.name))
        if current is None or not owns_replicas(current, FIELD_MANAGER):
            return
        handover = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": child_name(agent.name), "namespace": agent.namespace},
            "spec": {"replicas": current["spec"]["replicas"]},
        }
        await self.api.apply(handover, field_manager=REPLICAS_HANDOVER_MANAGER)

    async def reconcile(self, namespace: str, name: str, logger: logging.Logger | Any) -> Outcome | None:
        """Bring the children and status of VoiceAgent ``namespace/name`` in line with its spec.

        Returns None when the agent is gone or being deleted (children go with it via ownerReferences).
        Raises :class:`KubeApiError` when applying fails (after recording it in the status) or the API is
        unreachable, so the caller's retry policy applies.
        """
        async with self._lock(namespace, name):
            body = await self.api.get(AGENT_API_VERSION, KIND, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            agent = AgentRef.from_body(body)
            problems: list[Problem]
            try:
                settings = parse_settings(body.get("spec"), f"VoiceAgent {namespace}/{name}")
                problems = semantic_problems(name, settings)
            except SettingsError as err:  # e.g. a spec stored before a stricter CRD schema
                problems = [Problem("InvalidSettings", str(err).replace("\n", " "))]
            applied: list[str] = []
            apply_error: str | None = None
            deployment: dict[str, Any] | None = None
            if problems:
                logger.warning("settings of %s/%s are invalid: %s", namespace, name, problems[0].message)
                deployment = await self.api.get("apps/v1", "Deployment", namespace, child_name(name))
            else:
                try:
                    deployment = await self._apply_children(agent, settings, applied)
                except KubeApiError as err:
                    apply_error = str(err)
                    deployment = await self.api.get("apps/v1", "Deployment", namespace, child_name(name))
            generation = int(body["metadata"].get("generation") or 0)
            status = build_status(
                generation=generation,
                previous=body.get("status"),
                config_problems=problems,
                deployment=deployment,
                now=utc_now(),
                apply_error=apply_error,
                bridge_address=bridge_address(name, namespace, self.config.cluster_domain),
            )
            if status_changed(body.get("status"), status):
                await self.api.patch_status(AGENT_API_VERSION, KIND, namespace, name, status)
            if apply_error:
                raise KubeApiError(0, "ApplyFailed", apply_error)
            return Outcome(tuple(applied), status, tuple(problems))

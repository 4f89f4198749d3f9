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

from rtvoice.core.settings import SettingsError, parse_settings
from rtvoice_operator import AGENT_API_VERSION, KIND
from rtvoice_operator.conditions import build_status, status_changed, utc_now
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.kubeapi import KubeApi, KubeApiError
from rtvoice_operator.render import AgentRef, child_name, render_children
from rtvoice_operator.validate import Problem, semantic_problems


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
                    for child in render_children(agent, settings, self.config):
                        stored = await self.api.apply(child)
                        applied.append(child["kind"])
                        if child["kind"] == "Deployment":
                            deployment = stored
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
            )
            if status_changed(body.get("status"), status):
                await self.api.patch_status(AGENT_API_VERSION, KIND, namespace, name, status)
            if apply_error:
                raise KubeApiError(0, "ApplyFailed", apply_error)
            return Outcome(tuple(applied), status, tuple(problems))

"""Pure computation of ``VoiceAgent.status`` (``observedGeneration`` + conditions).

Conditions follow the Kubernetes convention (``metav1.Condition``): ``type``, ``status``
(``True``/``False``/``Unknown``), CamelCase ``reason``, ``message``, ``lastTransitionTime`` (changed
only when ``status`` changes) and ``observedGeneration``.

- ``ConfigValid``: the spec passes the rules the CRD cannot express (:mod:`.validate`).
- ``Ready``: the bridge Deployment has ``status.readyReplicas >= spec.replicas > 0``.
- ``Progressing``: a rollout of the current spec is under way (False once it completed).
- ``Reconciling`` (kstatus): True while the operator or the Deployment controller is still working
  towards the current spec (children being created, a rollout under way, the Deployment controller not
  yet at the new template). Tools such as Argo CD and Flux (kstatus) read it, together with
  ``observedGeneration`` != ``metadata.generation``, as "in progress".
- ``Stalled`` (kstatus): True when the operator cannot make progress by itself: the settings are
  invalid (``ConfigValid=False``) or applying the children failed; kstatus reports the agent "Failed".
  Only one of ``Reconciling`` and ``Stalled`` is True at a time.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from rtvoice_operator.validate import Problem


def utc_now() -> str:
    """Current time as RFC 3339 with second precision (``2025-01-31T12:00:00Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _replica_counts(deployment: dict[str, Any]) -> tuple[int, int, int, int]:
    spec_replicas = int(deployment.get("spec", {}).get("replicas", 1))
    status = deployment.get("status") or {}
    return (
        spec_replicas,
        int(status.get("readyReplicas") or 0),
        int(status.get("updatedReplicas") or 0),
        int(status.get("replicas") or 0),
    )


def ready_condition(
    deployment: dict[str, Any] | None, config_problems: Sequence[Problem]
) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``Ready`` from the bridge Deployment as the API returned it."""
    if deployment is None:
        if config_problems:
            return "False", "InvalidSettings", "no bridge is deployed because the settings are invalid"
        return "False", "DeploymentMissing", "the bridge Deployment does not exist yet"
    wanted, ready, _, _ = _replica_counts(deployment)
    if wanted == 0:
        return "False", "ScaledToZero", "spec.replicas is 0: no bridge is running"
    if ready >= wanted:
        return "True", "ReplicasReady", f"{ready}/{wanted} bridge replicas ready"
    return "False", "ReplicasNotReady", f"{ready}/{wanted} bridge replicas ready"


def progressing_condition(
    deployment: dict[str, Any] | None, config_problems: Sequence[Problem], apply_error: str | None = None
) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``Progressing``: is a rollout of the applied spec still going on."""
    if config_problems:
        return "False", "InvalidSettings", "nothing is rolled out until the settings are fixed"
    if apply_error:
        return "False", "ApplyFailed", apply_error
    if deployment is None:
        return "True", "Creating", "creating the bridge"
    generation = int(deployment.get("metadata", {}).get("generation", 0))
    observed = int((deployment.get("status") or {}).get("observedGeneration") or 0)
    wanted, _, updated, total = _replica_counts(deployment)
    if observed < generation:
        return "True", "RollingOut", "waiting for the Deployment controller to observe the new template"
    if updated < wanted or total > updated:
        return "True", "RollingOut", f"{updated}/{wanted} bridge replicas run the current settings"
    return "False", "RolloutComplete", f"all {wanted} bridge replicas run the current settings"


def reconciling_condition(
    deployment: dict[str, Any] | None, config_problems: Sequence[Problem], apply_error: str | None = None
) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``Reconciling``: True exactly while ``Progressing`` is True."""
    status, reason, message = progressing_condition(deployment, config_problems, apply_error)
    if status == "True":
        return "True", reason, message
    if config_problems or apply_error:
        return "False", "Stalled", "not reconciling: see the Stalled condition"
    return "False", "Reconciled", message


def stalled_condition(
    config_problems: Sequence[Problem], apply_error: str | None = None
) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``Stalled``: invalid settings or a failed apply."""
    if config_problems:
        return "True", "InvalidSettings", "; ".join(p.message for p in config_problems)
    if apply_error:
        return "True", "ApplyFailed", apply_error
    return "False", "NotStalled", "nothing blocks the reconcile"


def config_condition(config_problems: Sequence[Problem]) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``ConfigValid``; the first problem's reason, all messages."""
    if not config_problems:
        return "True", "Valid", "settings are valid"
    return "False", config_problems[0].reason, "; ".join(p.message for p in config_problems)


def build_status(
    *,
    generation: int,
    previous: dict[str, Any] | None,
    config_problems: Sequence[Problem],
    deployment: dict[str, Any] | None,
    now: str,
    apply_error: str | None = None,
    bridge_address: str | None = None,
) -> dict[str, Any]:
    """The new ``status`` (without kopf's own field) for ``metadata.generation == generation``.

    ``previous`` is the current status (or None); a condition keeps its ``lastTransitionTime`` while its
    ``status`` is unchanged. ``now`` is an RFC 3339 timestamp (see :func:`utc_now`). ``apply_error`` is
    the API's message when applying the children failed. ``bridge_address`` (the gRPC target of the
    agent's headless Service) goes to ``status.bridgeAddress`` when given.
    """
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)}
    conditions = []
    for ctype, (status, reason, message) in (
        ("Ready", ready_condition(deployment, config_problems)),
        ("ConfigValid", config_condition(config_problems)),
        ("Progressing", progressing_condition(deployment, config_problems, apply_error)),
        ("Reconciling", reconciling_condition(deployment, config_problems, apply_error)),
        ("Stalled", stalled_condition(config_problems, apply_error)),
    ):
        before = old.get(ctype)
        since = before.get("lastTransitionTime") if before and before.get("status") == status else None
        conditions.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    result: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
    if bridge_address:
        result["bridgeAddress"] = bridge_address
    return result


def status_changed(current: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True when writing ``new`` would change ``current`` (ignores fields ``new`` does not set)."""
    current = current or {}
    return any(current.get(key) != value for key, value in new.items())

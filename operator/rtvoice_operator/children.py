"""Every child of a VoiceAgent, in apply order, and the ones to remove (pure)."""

from __future__ import annotations

from typing import Any

from rtvoice.core.settings import AgentSettings
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import AgentRef, render_configmap, render_deployment
from rtvoice_operator.render_net import render_headless_service, render_network_policy, render_service
from rtvoice_operator.render_scale import autoscaler_kinds, render_autoscaler


def render_children(agent: AgentRef, settings: AgentSettings, cfg: OperatorConfig) -> list[dict[str, Any]]:
    """Apply order: ConfigMap (mounted by the pods), the two Services, the NetworkPolicy (when
    ``cfg.network_policy``), the Deployment, then its autoscaler (with ``spec.autoscaling``)."""
    children = [render_configmap(agent, settings), render_service(agent), render_headless_service(agent)]
    if cfg.network_policy:
        children.append(render_network_policy(agent, cfg))
    children.append(render_deployment(agent, settings, cfg))
    autoscaler = render_autoscaler(agent, settings, cfg)
    if autoscaler is not None:
        children.append(autoscaler)
    return children


def stale_kinds(children: list[dict[str, Any]], cfg: OperatorConfig) -> list[tuple[str, str]]:
    """``(apiVersion, kind)`` of autoscalers the operator may have made that ``children`` no longer has."""
    present = {(c["apiVersion"], c["kind"]) for c in children}
    return [kind for kind in autoscaler_kinds(cfg) if kind not in present]

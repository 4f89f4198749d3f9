"""Start the kopf operator programmatically (``rtvoice operator``) after a quick pre-flight check.

The pre-flight turns the common start-up failures (no credentials, API unreachable, CRD missing) into one
clear line instead of kopf's retry loop or a traceback.
"""

from __future__ import annotations

import asyncio

import httpx
import kopf
from kopf._cogs.structs.references import Insights  # not re-exported by kopf; stable since kopf 1.30

from rtvoice.core.service import announce_ready, run
from rtvoice_operator import API_GROUP, API_VERSION, PLURAL
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.kubeapi import KubeApiError, client_options, connection_info


class OperatorStartError(RuntimeError):
    """The operator cannot start; the message says why and what to do."""


def preflight() -> str:
    """Check credentials, reachability and that the VoiceAgent CRD is served; returns the API server URL.

    Raises :class:`OperatorStartError` with a one-line explanation.
    """
    try:
        info = connection_info()
    except KubeApiError as err:
        raise OperatorStartError(f"no usable Kubernetes credentials: {err.detail}") from None
    try:
        with httpx.Client(**client_options(info)) as client:
            response = client.get(f"/apis/{API_GROUP}/{API_VERSION}")
    except httpx.HTTPError as err:
        raise OperatorStartError(f"cannot reach the Kubernetes API at {info.server}: {err}") from None
    if response.status_code in (401, 403):
        raise OperatorStartError(
            f"the Kubernetes API at {info.server} refused the credentials (HTTP {response.status_code})"
        )
    resources = [r.get("name") for r in response.json().get("resources", [])] if response.is_success else []
    if PLURAL not in resources:
        raise OperatorStartError(
            f"the VoiceAgent CRD ({PLURAL}.{API_GROUP}/{API_VERSION}) is not installed at {info.server}; "
            "install it with: rtvoice crd | kubectl apply --server-side -f -"
        )
    return info.server


def run_operator(
    config: OperatorConfig,
    *,
    namespaces: tuple[str, ...] = (),
    health_host: str = "127.0.0.1",
    health_port: int | None = None,
) -> int:
    """Run until SIGINT/SIGTERM: all namespaces when ``namespaces`` is empty. Announces readiness
    (``RTVOICE_READY {"service": "operator", ...}``) once kopf's start-up handlers ran and it knows the
    namespaces and resources it watches (its watch streams start right then). Exact namespace names
    (no glob) turn kopf's namespace scanning off, so no namespace list permission is needed and watching
    starts within seconds. Raises OperatorStartError."""
    server = preflight()
    from rtvoice_operator import handlers  # noqa: F401  (registers the handlers with kopf)

    exact = bool(namespaces) and not any(set(ns) & set("*?[]!,") for ns in namespaces)
    liveness = f"http://{health_host}:{health_port}/healthz" if health_port else None

    async def main() -> int:
        ready = asyncio.Event()
        insights = Insights()

        async def announce() -> None:
            await ready.wait()
            await insights.ready_namespaces.wait()
            await insights.ready_resources.wait()
            announce_ready("operator", port=health_port or 0, api_server=server, namespaces=list(namespaces))

        announcer = asyncio.create_task(announce())
        try:
            await kopf.operator(
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=liveness,
                memo=kopf.Memo(config=config, exact_namespaces=exact),
                ready_flag=ready,
                insights=insights,
            )
        finally:
            announcer.cancel()
        return 0

    return run(main)

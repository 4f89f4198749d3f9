"""A small async Kubernetes API client (httpx) for what the operator does itself: read objects,
server-side apply children, merge-patch ``status``.

Credentials come from kopf's own login functions (in-cluster service account first, then
``$KUBECONFIG`` / ``~/.kube/config``), so the operator framework and this client always talk to the same
cluster as the same user. The ``kubernetes`` PyPI client is not used (its 37.x releases conflict with
botocore on python-dateutil, and it is synchronous).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import kopf
import yaml

from rtvoice_operator import AGENT_API_VERSION, FIELD_MANAGER, KIND, PLURAL

# (apiVersion, kind) -> plural resource name; every kind this client touches is namespaced.
RESOURCES: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Namespace"): "namespaces",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (AGENT_API_VERSION, KIND): PLURAL,
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"


class KubeApiError(RuntimeError):
    """A failed API call: ``status`` is the HTTP code (0 = transport error), ``reason`` the Status
    reason (``NotFound``, ``Conflict``, ``Invalid``, ``Forbidden``...), the message the server's."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.detail = message


def connection_info() -> kopf.ConnectionInfo:
    """Credentials as kopf would find them. Raises :class:`KubeApiError` when there are none."""
    settings = kopf.OperatorSettings()
    try:
        info = kopf.login_with_service_account(settings=settings)
        info = info or kopf.login_with_kubeconfig(settings=settings)
    except (OSError, yaml.YAMLError, KeyError, TypeError, kopf.LoginError) as err:
        detail = f"{type(err).__name__}: {err}" if isinstance(err, KeyError | TypeError) else str(err)
        detail = " ".join(detail.split())
        raise KubeApiError(0, "BadKubeconfig", f"cannot use the kubeconfig: {detail}") from None
    if info is None:
        raise KubeApiError(0, "NoCredentials", "no service account token and no kubeconfig found")
    return info


def client_options(info: kopf.ConnectionInfo) -> dict[str, Any]:
    """``httpx.Client``/``AsyncClient`` keyword arguments (base_url, auth headers, TLS) for ``info``."""
    return {
        "base_url": info.server,
        "headers": {"Accept": "application/json", **info.as_http_headers()},
        "verify": info.as_ssl_context(),
        "timeout": httpx.Timeout(30.0, connect=10.0),
    }


def resource_path(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """REST path, e.g. ``/apis/apps/v1/namespaces/ns/deployments/x/status``. KeyError for unknown kinds."""
    plural = RESOURCES[(api_version, kind)]
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def raise_for_status(response: httpx.Response) -> None:
    """Raise :class:`KubeApiError` with the API's Status reason/message for a non-2xx response."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    reason = str(body.get("reason") or response.reason_phrase)
    raise KubeApiError(response.status_code, reason, str(body.get("message") or response.text[:500]))


class KubeApi:
    """Async client. ``connect()`` builds it from :func:`connection_info`; close with :meth:`aclose`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> KubeApi:
        return cls(httpx.AsyncClient(**client_options(connection_info())))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
            if response.status_code == 401:
                # Projected service-account tokens rotate on disk: log in again once.
                self._client.headers.update(connection_info().as_http_headers())
                response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise KubeApiError(0, type(err).__name__, str(err) or repr(err)) from err
        return response

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        response = await self._request("GET", resource_path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return None
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    async def apply(self, obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply ``obj`` (a full manifest) as ``field_manager``, forcing ownership of the
        fields it sets (so drift made by others is reverted). Returns the object as stored."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        response = await self._request(
            "PATCH",
            path,
            params={"fieldManager": field_manager, "force": "true"},
            content=json.dumps(obj).encode(),  # JSON is YAML
            headers={"Content-Type": APPLY_CONTENT_TYPE},
        )
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete the object; True when it was there, False when it (or its whole resource type, e.g. a
        CRD that is not installed, or an API version the server does not serve) was not (404)."""
        response = await self._request("DELETE", resource_path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return False
        raise_for_status(response)
        return True

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON merge-patch ``{"status": status}`` through the ``/status`` subresource."""
        response = await self._request(
            "PATCH",
            resource_path(api_version, kind, namespace, name, "status"),
            content=json.dumps({"status": status}).encode(),
            headers={"Content-Type": MERGE_CONTENT_TYPE},
        )
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

"""Test support for the operator: a real kube-apiserver + etcd on loopback, a synchronous API client,
and the chart renderer (helmlite).

Both tools are built from Debian packages by ``make test-tools`` (``scripts/test-tools.sh``) BEFORE pytest
runs, into ``~/.cache/kube-testenv`` (``$RTVOICE_KUBE_CACHE`` overrides). Fixtures never build: they ask
the build script whether its cached binary is current (instant) and fail naming ``make test-tools`` when
it is missing or stale.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from rtvoice_operator.kubeapi import (
    MERGE_CONTENT_TYPE,
    RESOURCES,
    client_options,
    connection_info,
    raise_for_status,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
CHART = REPO / "charts" / "rtvoice"
CACHE = Path(os.environ.get("RTVOICE_KUBE_CACHE", Path.home() / ".cache" / "kube-testenv"))
T = TypeVar("T")


class ToolMissingError(RuntimeError):
    """A test tool is not built (or stale); the message says to run ``make test-tools``."""


def find_tool(script: Path) -> Path:
    """The binary a build script caches, without building (``RTVOICE_TOOLS_CHECK_ONLY=1``): the script
    checks its own cache key. Raises :class:`ToolMissingError` when it is missing or stale."""
    done = subprocess.run(
        ["bash", str(script), str(CACHE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "RTVOICE_TOOLS_CHECK_ONLY": "1"},
    )
    if done.returncode != 0:
        raise ToolMissingError(f"{script.relative_to(REPO)}: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_apiserver_port() -> int:
    """A port P with P, P+10000 and P+10001 free (start.sh puts etcd on the latter two)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        if all(_bindable(p) for p in (port, port + 10000, port + 10001)):
            return port
    raise RuntimeError("no free port triplet for the test apiserver")


def eventually(check: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` every 0.1 s until it returns a truthy value; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


class Kube:
    """Synchronous client for tests, with the same credentials logic as the operator's client."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        old = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(kubeconfig)
        try:
            self.http = httpx.Client(**client_options(connection_info()))
        finally:
            if old is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = old

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path`` or None (404)."""
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    def create(self, path: str, obj: dict[str, Any], dry_run: bool = False) -> httpx.Response:
        """POST ``obj`` to the collection ``path``; the raw response (tests inspect rejections)."""
        return self.http.post(path, json=obj, params={"dryRun": "All"} if dry_run else None)

    def apply(self, path: str, obj: dict[str, Any], manager: str = "rtvoice-tests") -> dict[str, Any]:
        response = self.http.patch(
            path,
            params={"fieldManager": manager, "force": "true"},
            content=json.dumps(obj).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    def merge_patch(self, path: str, patch: dict[str, Any], manager: str = "rtvoice-tests") -> dict[str, Any]:
        response = self.http.patch(
            path,
            params={"fieldManager": manager},
            content=json.dumps(patch).encode(),
            headers={"Content-Type": MERGE_CONTENT_TYPE},
        )
        raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    def create_namespace(self, name: str) -> None:
        response = self.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        if response.status_code != 409:
            raise_for_status(response)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """Write a kubeconfig authenticating as ServiceAccount ``namespace/name`` (TokenRequest API)."""
        response = self.http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
        raise_for_status(response)
        token = response.json()["status"]["token"]
        admin = yaml.safe_load(self.kubeconfig.read_text())
        admin["users"] = [{"name": "sa", "user": {"token": token}}]
        admin["contexts"][0]["context"]["user"] = "sa"
        path.write_text(yaml.safe_dump(admin))
        return path

    def close(self) -> None:
        self.http.close()


@dataclass
class KubeEnv:
    """A running control plane: its kubeconfig, state directory and an admin :class:`Kube` client."""

    kubeconfig: Path
    state_dir: Path
    kube: Kube


@contextmanager
def kube_testenv(state_dir: Path) -> Iterator[KubeEnv]:
    """Start the prebuilt kube-apiserver + etcd on free loopback ports; stop them on exit."""
    binary = find_tool(SCRIPTS / "kube-testenv" / "build-kube-apiserver.sh")
    port = pick_apiserver_port()
    started = subprocess.run(
        ["bash", str(SCRIPTS / "kube-testenv" / "start.sh"), str(binary), str(state_dir), str(port)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        if started.returncode != 0:
            raise RuntimeError(f"kube-apiserver did not start: {started.stderr[-2000:]}")
        kube = Kube(Path(started.stdout.strip().splitlines()[-1]))
        try:
            yield KubeEnv(kube.kubeconfig, state_dir, kube)
        finally:
            kube.close()
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "kube-testenv" / "stop.sh"), str(state_dir)], check=False, timeout=60
        )


def render_chart(
    helmlite: Path, *args: str, namespace: str = "rtvoice", release: str = "rtvoice"
) -> list[dict[str, Any]]:
    """``helm template``-equivalent render of ``charts/rtvoice`` (extra ``args``: ``-f FILE``, ``--set``)."""
    done = subprocess.run(
        [str(helmlite), "--name", release, "--namespace", namespace, *args, str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"helmlite failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# Plural resource names of what the tests send: the operator's own kinds plus the chart's others.
PLURALS: dict[tuple[str, str], str] = {
    **RESOURCES,
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Secret"): "secrets",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("policy/v1beta1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "clusterroles",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "clusterrolebindings",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
}


def object_path(doc: dict[str, Any], *, collection: bool = False) -> str:
    """REST path of ``doc`` (or of its collection), e.g. ``/apis/apps/v1/namespaces/ns/deployments/x``."""
    api_version, meta = doc["apiVersion"], doc["metadata"]
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if meta.get("namespace"):
        path += f"/namespaces/{meta['namespace']}"
    path += "/" + PLURALS[(api_version, doc["kind"])]
    return path if collection else f"{path}/{meta['name']}"


def missing_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of values in ``sent`` that ``stored`` lacks or changed: what the API server pruned (unknown
    fields, which a v1.20 server drops silently instead of rejecting) or rewrote. Defaults it added are
    ignored, and so are zero values (``""``, ``0``, ``false``, empty) it omits as the Go types' ``omitempty``
    does. Lists are compared element by element."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path or "."]
        return [
            p
            for key, value in sent.items()
            if key in stored or value not in ("", 0, False, None, [], {})
            for p in missing_fields(value, stored.get(key), f"{path}.{key}")
        ]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(sent, stored, strict=True))
            for p in missing_fields(a, b, f"{path}[{i}]")
        ]
    return [] if sent == stored else [path]

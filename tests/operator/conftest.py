"""Fixtures of the operator tests: the kube-apiserver test environment (one per session) and helmlite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rtvoice_operator import CRD_NAME
from tests.support.kube import CHART, SCRIPTS, KubeEnv, eventually, find_tool, kube_testenv


@pytest.fixture(scope="session")
def helmlite() -> Path:
    """The helmlite binary, prebuilt by ``make test-tools`` (fails, never builds, when missing)."""
    return find_tool(SCRIPTS / "helmlite" / "build.sh")


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    """A real kube-apiserver v1.20 + etcd on loopback with the chart's CRD applied (server-side apply)."""
    with kube_testenv(tmp_path_factory.mktemp("kube")) as env:
        crd = yaml.safe_load((CHART / "crds" / "voiceagents.yaml").read_text())
        env.kube.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}", crd)

        def established() -> bool:
            got = env.kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}") or {}
            conds = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
            return conds.get("Established") == "True"

        eventually(established, 30, "the VoiceAgent CRD to be established")
        yield env

"""`rtvoice operator` as a process: one clear line on start-up errors; ready line and clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rtvoice.core.service import READY_PREFIX
from tests.support.kube import KubeEnv


def _run_operator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtvoice", "operator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize(
    ("kubeconfig", "expected"),
    [
        ("missing", "no usable Kubernetes credentials: cannot use the kubeconfig"),
        ("garbage", "no usable Kubernetes credentials: cannot use the kubeconfig"),
        ("unreachable", "cannot reach the Kubernetes API at https://127.0.0.1:1"),
    ],
)
def test_start_up_errors_are_one_line(tmp_path: Path, kubeconfig: str, expected: str) -> None:
    path = tmp_path / "kubeconfig"
    if kubeconfig == "garbage":
        path.write_text("clusters: [\n")
    elif kubeconfig == "unreachable":
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', "
            "insecure-skip-tls-verify: true}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        )
    done = _run_operator({"KUBECONFIG": str(path), "HOME": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rtvoice operator: {expected}"), done.stderr


def test_bad_flag_value_is_one_line(tmp_path: Path) -> None:
    done = _run_operator({"HOME": str(tmp_path)}, "--bridge-resources", "{")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rtvoice operator: --bridge-resources: not JSON (Expecting property name enclosed in double quotes)"
    )


@pytest.mark.kube
def test_operator_process_announces_ready_and_stops_on_sigterm(kube_env: KubeEnv, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvoice", "operator", "--namespace", "t-cli-only", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kube_env.kubeconfig)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(READY_PREFIX), line + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        info = json.loads(line[len(READY_PREFIX) :])
        assert info["service"] == "operator" and info["namespaces"] == ["t-cli-only"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

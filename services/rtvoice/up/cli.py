"""``rtvoice up [-f agent.yaml]``: local engine, recorder, bridge and ingress on loopback, one command.

Prints the page URL and the archive folder, writes ``<state-dir>/up.json`` (owner-only, so ``rtvoice call``
finds the caller URL and token without flags) and stops everything cleanly on Ctrl-C / SIGTERM: the
ingress first (live calls may go on for ``--drain-timeout-s``, then end with ``session.ended``
``server_shutdown``), then the bridge, the recorder and the engine, each given the time its own shutdown
needs (:mod:`rtvoice.core.shutdown`). Only the ingress gets the caller-token secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml

from rtvoice.core.settings import DEFAULT_API_KEY_ENV, AgentDocument, SettingsError, load_agent_file
from rtvoice.core.shutdown import DRAIN_TIMEOUT_S, drain_stop_timeout_s
from rtvoice.ingress.auth import SECRET_ENV
from rtvoice.up.supervisor import ChildFailed, Supervisor

DEFAULT_AGENT = Path(__file__).with_name("agent.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "up",
        help="run the whole platform locally (offline engine by default, no API key needed)",
        description=(
            "Start the offline engine (for provider: local), the recorder, the realtime-bridge and the "
            "ingress as local processes on loopback. Open the printed URL in a browser, or run "
            "`rtvoice call FILE.wav` in another terminal. Ctrl-C stops everything; calls in progress get "
            "--drain-timeout-s to finish, then end with session.ended server_shutdown, and are archived."
        ),
    )
    p.add_argument(
        "-f",
        "--agent-file",
        type=Path,
        default=None,
        help="VoiceAgent YAML (default: the embedded offline assistant)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the ingress listens on (default %(default)s)")
    p.add_argument(
        "--port",
        type=int,
        default=8080,
        help="ingress port for the web page and callers (default %(default)s; 0 = any free port)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".rtvoice"),
        help="archive, spool, logs and up.json go here (default %(default)s)",
    )
    p.add_argument("--archive-dir", type=Path, default=None, help="default: STATE_DIR/archive")
    p.add_argument(
        "--provider-url",
        default=None,
        help="use this provider endpoint instead of starting the offline engine",
    )
    p.add_argument(
        "--token-ttl-s",
        type=int,
        default=12 * 3600,
        help="lifetime of the caller token printed for this run (default %(default)s s)",
    )
    p.add_argument(
        "--drain-timeout-s",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="on Ctrl-C / SIGTERM, how long live calls may continue before they are ended with "
        "session.ended server_shutdown (default %(default)s s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes per service: N bridges behind the ingress's placement and N ingress workers on "
        f"the one caller port (default: one per usable CPU, here {default_workers()})",
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the services' logs")
    p.set_defaults(func=_main)


def default_workers() -> int:
    """One worker per CPU this process may run on (at most 8)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _main(args: argparse.Namespace) -> int:
    from rtvoice.core.service import run

    return run(lambda: up(args))


def _pids(sup: Supervisor) -> dict[str, Any]:
    """The ``pids`` (the first process of each service) and ``service_pids`` (every process of each
    service: all bridges, and the ingress's workers rather than its supervisor) of up.json."""
    every: dict[str, list[int]] = {}
    for c in sup.children:
        every.setdefault(c.service, []).extend(c.ready.get("workers") or [c.process.pid])
    first = {c.service: c.process.pid for c in reversed(sup.children)}
    return {"pids": first, "service_pids": every}


def _fail(message: str) -> int:
    print(f"rtvoice up: {message}", file=sys.stderr)
    return 1


async def up(args: argparse.Namespace) -> int:
    try:
        doc = load_agent_file(args.agent_file or DEFAULT_AGENT)
    except SettingsError as err:
        return _fail(str(err))
    spec = doc.spec  # load_agent_file checked the schema and the provider rules (rtvoice.core.rules)
    state: Path = args.state_dir.resolve()
    archive: Path = (args.archive_dir or state / "archive").resolve()
    for d in (state, archive, state / "spool"):
        d.mkdir(parents=True, exist_ok=True)
    agent_path = state / "agent.yaml"
    agent_path.write_text(_agent_yaml(doc), encoding="utf-8")

    if spec.provider != "local" and not args.provider_url:
        env_name = spec.credentials.api_key_env or DEFAULT_API_KEY_ENV[spec.provider]
        if not (os.environ.get("RTVOICE_PROVIDER_API_KEY") or os.environ.get(env_name)):
            return _fail(
                f"provider {spec.provider!r} needs an API key: set {env_name} "
                "(or use provider: local for the offline engine)"
            )

    if args.drain_timeout_s < 0:
        return _fail(f"--drain-timeout-s must be >= 0, got {args.drain_timeout_s:g}")
    workers = default_workers() if args.workers is None else args.workers
    if not 1 <= workers <= 64:
        return _fail(f"--workers must be between 1 and 64, got {workers}")
    drain = ["--drain-timeout-s", str(args.drain_timeout_s)]
    drain_stop_s = drain_stop_timeout_s(args.drain_timeout_s)
    auth_secret = secrets.token_urlsafe(32)
    # Internal calls (ingress -> bridge -> recorder) need a per-run token; children get only its path.
    token_file = state / "internal-token"
    write_private_file(token_file, secrets.token_urlsafe(32).encode())
    internal = ["--internal-token-file", str(token_file)]
    sup = Supervisor(echo_logs=not args.quiet)
    stop = asyncio.Event()
    from rtvoice.core.service import install_stop_signals

    install_stop_signals(stop)
    up_file = state / "up.json"
    try:
        provider_url = args.provider_url
        if spec.provider == "local" and not provider_url:
            engine_args = ["--port", "0", *spec.local_engine.cli_args()]
            engine = await sup.start("local-realtime", engine_args)
            provider_url = engine.ready.get("url") or f"ws://127.0.0.1:{engine.ready['port']}/v1/realtime"
        recorder = await sup.start(
            "recorder",
            [
                "--port",
                "0",
                "--archive-dir",
                str(archive),
                "--spool-dir",
                str(state / "spool"),
                # Locally a broken bridge stream will not be resumed by a new bridge process:
                # finalize its archive after 5 s instead of the production 30 s.
                "--resume-grace-s",
                "5",
                *internal,
            ],
        )
        bridge_args = [
            "--port",
            "0",
            "--agent-file",
            str(agent_path),
            "--recorder",
            f"127.0.0.1:{recorder.ready['port']}",
        ]
        if provider_url:
            bridge_args += ["--provider-url", provider_url]
        bridges = [
            await sup.start("bridge", [*bridge_args, *drain, *internal], stop_timeout_s=drain_stop_s)
            for _ in range(workers)
        ]
        ingress = await sup.start(
            "ingress",
            [
                "--host",
                args.host,
                "--port",
                str(args.port),
                "--bridge",
                ",".join(f"127.0.0.1:{b.ready['port']}" for b in bridges),
                "--workers",
                str(workers),
                *drain,
                *internal,
            ],
            env={SECRET_ENV: auth_secret},  # the only child that checks caller tokens
            stop_timeout_s=drain_stop_s,
        )
    except ChildFailed as err:
        await sup.stop_all()
        hint = " (is the port in use? try --port 0)" if "ingress" in str(err) else ""
        return _fail(f"{err}{hint}")

    port = int(ingress.ready["port"])
    from rtvoice.ingress.auth import mint_token

    token = mint_token(auth_secret.encode(), doc.namespace, doc.name, ttl_s=args.token_ttl_s)
    http = f"http://{_host_for_url(args.host)}:{port}"
    info: dict[str, Any] = {
        "agent": f"{doc.namespace}/{doc.name}",
        "provider": spec.provider,
        "page_url": f"{http}/?agent={doc.namespace}/{doc.name}&token={token}",
        "caller_url": f"ws://{_host_for_url(args.host)}:{port}/v1/agents/{doc.namespace}/{doc.name}",
        "token": token,
        "archive_dir": str(archive),
        **_pids(sup),
        "workers": workers,
    }
    _write_state(up_file, info)
    print(
        f"\nrtvoice is up: agent {info['agent']} on provider {spec.provider}\n"
        f"  open      {info['page_url']}\n"
        f"  or call   rtvoice call question.wav   (reads {up_file})\n"
        f"  archive   {archive}\n"
        f"  stop      Ctrl-C\n",
        flush=True,
    )
    exit_code = await _watch(sup, stop, up_file, info)
    print(
        f"rtvoice up: stopping; live calls may continue for {args.drain_timeout_s:g} s, then they are ended "
        "and archived...",
        file=sys.stderr,
        flush=True,
    )
    await sup.stop_all()
    with contextlib.suppress(FileNotFoundError):
        up_file.unlink()
    print("rtvoice up: stopped", file=sys.stderr, flush=True)
    return exit_code


async def _watch(sup: Supervisor, stop: asyncio.Event, up_file: Path, info: dict[str, Any]) -> int:
    """Wait for Ctrl-C/SIGTERM; restart a service that dies (same port), at most 5 times a minute."""
    loop = asyncio.get_running_loop()
    restarts: list[float] = []
    while True:
        stop_task = asyncio.create_task(stop.wait())
        died_task = asyncio.create_task(sup.wait_any_exit())
        await asyncio.wait({stop_task, died_task}, return_when="FIRST_COMPLETED")
        for t in (stop_task, died_task):
            t.cancel()
        if stop.is_set():
            return 0
        dead = died_task.result()
        await asyncio.sleep(0.1)  # collect its last output
        restarts = [t for t in restarts if loop.time() - t < 60] + [loop.time()]
        if len(restarts) > 5:
            print(f"rtvoice up: {dead.explain()}; it keeps dying, stopping the others", file=sys.stderr)
            return 1
        print(f"rtvoice up: {dead.explain()}; restarting it", file=sys.stderr, flush=True)
        try:
            await sup.restart(dead)
        except ChildFailed as err:
            print(f"rtvoice up: {err}; stopping the others", file=sys.stderr)
            return 1
        info.update(_pids(sup))
        _write_state(up_file, info)


def _write_state(path: Path, info: dict[str, Any]) -> None:
    """up.json holds the caller token: readable by the owner only, from its first byte
    (:func:`write_private_file`)."""
    write_private_file(path, json.dumps(info, indent=2).encode())


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600 from creation: written to a fresh temporary
    file in the same folder (``O_CREAT | O_EXCL``, mode 0600, fsynced), then renamed over ``path``, so
    readers see the old or the new content, never a partial or world-readable file. Raises ``OSError``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _host_for_url(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _agent_yaml(doc: AgentDocument) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "rtvoice.io/v1alpha1",
            "kind": "VoiceAgent",
            "metadata": {"name": doc.name, "namespace": doc.namespace},
            "spec": doc.spec.to_public_dict(),
        },
        sort_keys=False,
    )

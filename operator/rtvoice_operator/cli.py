"""``rtvoice operator``, ``rtvoice crd`` and ``rtvoice health`` subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rtvoice_operator import health
from rtvoice_operator.config import (
    ENV_BRIDGE_IMAGE,
    ENV_GRACE,
    ENV_PRESTOP,
    ENV_RECORDER,
    OperatorConfig,
    OperatorConfigError,
    parse_resources,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``operator``, ``crd`` and ``health`` to the ``rtvoice`` command."""
    op = subparsers.add_parser(
        "operator",
        help="run the Kubernetes operator: VoiceAgent resources become realtime-bridge Deployments",
        description=(
            "Watch VoiceAgent resources (rtvoice.io/v1alpha1) and keep, for each, a ConfigMap, Deployment "
            "and Service of its realtime-bridge, applied with server-side apply (field manager "
            "rtvoice-operator). Writes only the agents' status. Credentials: in-cluster service account, "
            "else $KUBECONFIG / ~/.kube/config. Each flag defaults to the RTVOICE_* variable in its help."
        ),
    )
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; glob allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    op.add_argument(
        "--bridge-image", help=f"image of the bridge pods (${ENV_BRIDGE_IMAGE}; default rtvoice:latest)"
    )
    op.add_argument(
        "--image-pull-policy", choices=["Always", "IfNotPresent", "Never"], help="of the bridge pods"
    )
    op.add_argument(
        "--recorder", metavar="HOST:PORT", help=f"recorder gRPC address the bridges tee to (${ENV_RECORDER})"
    )
    op.add_argument(
        "--termination-grace-s",
        type=int,
        help=f"time a stopping bridge gets to drain live calls (${ENV_GRACE})",
    )
    op.add_argument(
        "--prestop-delay-s", type=int, help=f"pre-stop sleep while endpoints update (${ENV_PRESTOP})"
    )
    op.add_argument(
        "--bridge-resources", metavar="JSON", help="bridge container ResourceRequirements as JSON"
    )
    op.add_argument("--engine-resources", metavar="JSON", help="offline-engine sidecar ResourceRequirements")
    op.add_argument(
        "--host", default="127.0.0.1", help="address of the /healthz endpoint (default %(default)s)"
    )
    op.add_argument(
        "--health-port", type=int, default=None, help="serve kopf's liveness endpoint /healthz on this port"
    )
    op.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    op.set_defaults(func=_operator)

    crd = subparsers.add_parser(
        "crd",
        help="print the VoiceAgent CustomResourceDefinition (generated from the settings model)",
        description="Print the voiceagents.rtvoice.io CRD as YAML; install: rtvoice crd | kubectl apply -f -",
    )
    crd.add_argument(
        "--check", metavar="FILE", type=Path, help="exit 1 when FILE differs from the generated CRD"
    )
    crd.add_argument("-o", "--output", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    crd.set_defaults(func=_crd)

    probe = subparsers.add_parser(
        "health",
        help="check a gRPC server's grpc.health.v1 status (exit 0 = SERVING); for Kubernetes exec probes",
        description=health.__doc__,
    )
    health.add_arguments(probe)
    probe.set_defaults(func=health.run_probe)


def _crd(args: argparse.Namespace) -> int:
    from rtvoice_operator.crd import crd_yaml

    text = crd_yaml()
    if args.check is not None:
        try:
            current = args.check.read_text(encoding="utf-8")
        except OSError as err:
            print(f"rtvoice crd: cannot read {args.check}: {err.strerror}", file=sys.stderr)
            return 1
        if current != text:
            print(
                f"rtvoice crd: {args.check} is stale; regenerate it with: rtvoice crd -o {args.check}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def build_config(args: argparse.Namespace) -> OperatorConfig:
    """OperatorConfig from the flags, falling back to RTVOICE_* variables. Raises OperatorConfigError."""
    overrides: dict[str, Any] = {
        "bridge_image": args.bridge_image,
        "image_pull_policy": args.image_pull_policy,
        "recorder_address": args.recorder,
        "termination_grace_s": args.termination_grace_s,
        "prestop_delay_s": args.prestop_delay_s,
    }
    if args.bridge_resources:
        overrides["bridge_resources"] = parse_resources("--bridge-resources", args.bridge_resources)
    if args.engine_resources:
        overrides["engine_resources"] = parse_resources("--engine-resources", args.engine_resources)
    return OperatorConfig.from_env(**overrides)


def _operator(args: argparse.Namespace) -> int:
    from rtvoice.core.service import setup_logging

    setup_logging("operator", args.log_level)
    try:
        config = build_config(args)
    except OperatorConfigError as err:
        print(f"rtvoice operator: {err}", file=sys.stderr)
        return 2
    from rtvoice_operator.runner import OperatorStartError, run_operator

    try:
        return run_operator(
            config,
            namespaces=tuple(args.namespace),
            health_host=args.host,
            health_port=args.health_port,
        )
    except OperatorStartError as err:
        print(f"rtvoice operator: {err}", file=sys.stderr)
        return 1

"""``rtvoice operator``, ``rtvoice crd`` and ``rtvoice health`` subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, model_validator

from rtvoice.core.config import Opt
from rtvoice.core.server_settings import LogSettings
from rtvoice_operator import health
from rtvoice_operator.config import OperatorConfig, OperatorConfigError


class OperatorCommand(OperatorConfig, LogSettings):
    """``rtvoice operator``: the operator-wide settings, where it watches, and its health endpoint."""

    namespace: Annotated[list[str], Opt(short="-n")] = Field(
        default_factory=list,
        description="watch this namespace (repeatable; exact names start at once, globs need namespace "
        "list rights)",
    )
    all_namespaces: Annotated[bool, Opt(short="-A", switch=True)] = Field(
        False, description="watch every namespace (the default when no --namespace is given)"
    )
    host: str = Field("127.0.0.1", description="address of the /healthz endpoint")
    health_port: Annotated[int | None, Opt(metavar="PORT")] = Field(
        None, ge=1, le=65535, description="serve kopf's liveness endpoint /healthz on this port"
    )

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if self.namespace and self.all_namespaces:
            raise ValueError("give --namespace or --all-namespaces, not both")
        return self


#: The configuration model of each command (``tests/operator/test_chart_config_schema.py`` reads it).
SETTINGS = {"operator": OperatorCommand}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``operator``, ``crd`` and ``health`` to the ``rtvoice`` command."""
    op = subparsers.add_parser(
        "operator",
        help="run the Kubernetes operator: VoiceAgent resources become realtime-bridge Deployments",
        description=(
            "Watch VoiceAgent resources (rtvoice.io/v1alpha1) and keep, for each, a ConfigMap, Deployment, "
            "Services (ClusterIP and headless), optional NetworkPolicy and autoscaler of its "
            "realtime-bridge, applied with server-side apply (field manager "
            "rtvoice-operator). Writes only the agents' status. Credentials: in-cluster service account, "
            "else $KUBECONFIG / ~/.kube/config. Each flag defaults to the RTVOICE_* variable in its help."
        ),
    )
    OperatorCommand.add_arguments(op)
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


def build_config(args: argparse.Namespace) -> OperatorCommand:
    """The configuration from the flags, falling back to RTVOICE_* variables. Raises OperatorConfigError."""
    return OperatorCommand.from_args(args)


def _operator(args: argparse.Namespace) -> int:
    from rtvoice.core.service import setup_logging

    try:
        config = build_config(args)
    except OperatorConfigError as err:
        print(f"rtvoice operator: {err}", file=sys.stderr)
        return 2
    setup_logging("operator", config.log_level)
    from rtvoice_operator.runner import OperatorStartError, run_operator

    try:
        return run_operator(
            config,
            namespaces=tuple(config.namespace),
            health_host=config.host,
            health_port=config.health_port,
        )
    except OperatorStartError as err:
        print(f"rtvoice operator: {err}", file=sys.stderr)
        return 1

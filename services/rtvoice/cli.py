"""The ``rtvoice`` command: one entry point, one subcommand per service or tool.

Each area registers its own subcommands (``rtvoice.<area>.cli.register``); this module only assembles
them, so ``rtvoice --help`` lists everything that is installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, the subcommands it registers) in the order shown by --help.
_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rtvoice.up", ("up",)),
    ("rtvoice.caller.cli", ("call",)),
    ("rtvoice.localrt.cli", ("local-realtime",)),
    ("rtvoice.bridge.cli", ("bridge",)),
    ("rtvoice.recorder.cli", ("recorder", "sessions")),
    ("rtvoice.ingress.cli", ("ingress", "token")),
    ("rtvoice_operator.cli", ("operator", "crd", "health")),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or when ``command`` names a known subcommand only the area that provides it
    (a service starts without importing every other service's dependencies)."""
    parser = argparse.ArgumentParser(
        prog="rtvoice",
        description=(
            "Self-hostable realtime voice agents. Start everything locally with `rtvoice up`, "
            "then talk to it with `rtvoice call FILE.wav` or the web page it prints."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from rtvoice import __version__

    parser.add_argument("--version", action="version", version=f"rtvoice {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    areas = [a for a in _AREAS if command in a[1]] or list(_AREAS)
    for module_name, _ in areas:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # area not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The `addressclip` command line: one subcommand per module in `addressclip.commands`.

Each command module defines `register(subparsers)` that adds its parser and sets `func`.
Command modules import heavy libraries (torch, matplotlib) inside their functions, so that
`addressclip --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from addressclip import __version__
from addressclip.errors import AddressclipError

# Explicit registry (order = order in --help).
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "render",
    "addressbook",
    "build",
    "validate",
    "pretrain",
    "train",
    "eval",
    "baseline",
    "benchmark",
    "predict",
    "export",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="addressclip",
        description="Image Address Localization: from a street-level photo to a human-readable address.",
    )
    parser.add_argument("--version", action="version", version=f"addressclip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"addressclip.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except AddressclipError as error:
        print(f"addressclip {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"addressclip {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

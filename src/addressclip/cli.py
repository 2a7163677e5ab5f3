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
    "atlas",
    "addressbook",
    "build",
    "validate",
    "shard",
    "caption",
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


def parse_intermixed(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, accepting a command's list positionals (KEY=VALUE overrides, photo paths) before, between
    and after its options: `train --config paper model.arch=X --pretrained W data=D out=O` works.

    argparse fills a `nargs='*'` positional only from its first run of values; the values given after a
    later option come back as extras, which are appended to the positional the command names in its
    `intermixed` default. Anything else left over (an unknown --flag) is the usual usage error.
    """
    args, extras = parser.parse_known_args(argv)
    target = getattr(args, "intermixed", None)
    if extras:
        if target is None or any(item.startswith("-") and item != "-" for item in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        setattr(args, target, [*(getattr(args, target) or []), *extras])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_intermixed(parser, argv)
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

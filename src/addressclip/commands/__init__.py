"""CLI subcommands; each module has `register(subparsers)` (see addressclip.cli)."""

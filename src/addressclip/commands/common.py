"""Argument groups shared by several subcommands, so each option reads the same everywhere.

Command modules call these helpers from their `register` functions; each helper adds one group
(model, run config, device, threads, progress, method options, partition rules) and the matching
`*_from_args` function turns the parsed namespace back into the owning object.
"""

from __future__ import annotations

"""User-facing errors: one line that names the file/field and what to do.

Anything a user can cause (a bad path, a malformed file, a wrong option) raises
`AddressclipError`; the CLI prints its message on one line and exits with status 2,
instead of a traceback from deep inside a library.
"""

from __future__ import annotations


class AddressclipError(Exception):
    """An error caused by the user's input, with a message fit to print as is."""


class InputError(AddressclipError):
    """A file or record the user gave cannot be read (names the file and the field)."""

    def __init__(self, source: object, field: str | None, problem: str) -> None:
        where = f"{source}" if field is None else f"{source}: field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


class ConfigError(AddressclipError):
    """An unknown or invalid configuration key or value."""

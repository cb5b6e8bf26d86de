"""Errors the user can act on, each with the exit code ARCHITECTURE.md promises.

Anything else that escapes is a bug in tvc (exit 1); the CLI shows its traceback only with --debug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_BUDGET = 4
EXIT_MISMATCH = 5
EXIT_TOOLCHAIN = 6


class TvcError(Exception):
    """A failure with a plain-language message for the user and a documented exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(TvcError):
    exit_code = EXIT_USAGE


class ModelError(TvcError):
    """The model file is invalid or uses something tvc does not support."""

    exit_code = EXIT_MODEL


class IRError(TvcError):
    """The IR broke an invariant: a tvc bug when raised after a pass, a user error in IR text."""

    exit_code = EXIT_MODEL


class ToolchainError(TvcError):
    """A compiler or emulator tvc needs is not installed."""

    exit_code = EXIT_TOOLCHAIN


class MismatchError(TvcError):
    exit_code = EXIT_MISMATCH


class BudgetError(TvcError):
    """The model does not fit the board's (or the given) flash/RAM budget."""

    exit_code = EXIT_BUDGET

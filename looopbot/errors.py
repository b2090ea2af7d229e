"""The one expected-failure type, and the exit codes of DESIGN §11."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


class LooopbotError(Exception):
    """An expected failure: the message says what went wrong and what to do.

    The top-level handler prints it as one line on stderr and exits with `code`.
    """

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class LockHeld(LooopbotError):
    def __init__(self) -> None:
        super().__init__("another beat is running; try again when it ends", EXIT_LOCKED)

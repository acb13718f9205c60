"""The refusal of a whole file, which reading, header mapping and validation all raise."""

from __future__ import annotations


class FileRefused(Exception):
    """The file as a whole cannot be read: wrong format, over a limit, broken header."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

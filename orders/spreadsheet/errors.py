"""The refusal of a whole file, which reading, header mapping and validation all raise."""

from __future__ import annotations


class FileRefused(Exception):
    """The file as a whole cannot be read: wrong format, over a limit, broken header."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HeaderNotFound(FileRefused):
    """No row near the top holds the required columns. Reading a CSV with another
    delimiter may still find one (a title line above the header decides the delimiter
    wrongly), so it is told apart from the other refusals."""

    def __init__(self, message: str, known_columns: int = 0) -> None:
        super().__init__(message)
        # How many GiftDesk columns the row the message is about has: of several
        # refusals (one per delimiter), the closest miss is the one worth showing.
        self.known_columns = known_columns


class NotValidCsv(FileRefused):
    """A CSV record the csv module cannot parse (quotes); under a wrong delimiter this can
    happen in a file that is fine."""

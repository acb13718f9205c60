"""Hostile workbooks, built in memory: small on disk, huge or greedy once opened.

Each function returns the bytes of an .xlsx an attacker (or a careless export) could
upload. The sheet XML is streamed into the zip in chunks, so building a 200 MB sheet
never holds 200 MB. A little random text goes into each big part, so its compression
ratio stays under the 200x a plain "ratio" check refuses: these files get past the zip
directory checks and test the limits behind them.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Iterator

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
SHEET_PATH = "xl/worksheets/sheet1.xml"
STRINGS_PATH = "xl/sharedStrings.xml"
RATIO = 150  # inflated : deflated, like the 1.3 MB -> 200 MB workbook of the report
CHUNK = 1024 * 1024

HEADER_ROW = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>email</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>amount</t></is></c></row>'
)


def data_row(number: int) -> str:
    return (
        f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>Person {number}</t></is></c>'
        f'<c r="B{number}" t="inlineStr"><is><t>p{number}@example.com</t></is></c>'
        f'<c r="C{number}"><v>50</v></c></row>'
    )


def blank_rows_bomb(unpacked_bytes: int = 200_000_000, data_rows: int = 1) -> bytes:
    """A header, `data_rows` recipients, then blank rows (`<row/>`, each the next row)
    until the sheet XML is `unpacked_bytes` long: 200 MB is 33 million blank rows in
    1.8 MB, under the 10x-the-upload-limit and 200:1 ratio checks of the zip directory."""
    rows = [HEADER_ROW, *(data_row(number) for number in range(2, data_rows + 2))]
    return workbook(sheet_chunks("".join(rows), "<row/>", unpacked_bytes))


def rows_after_the_data(data_rows: int, more_rows: int, broken_tail: bool = False) -> bytes:
    """`data_rows` recipients, then `more_rows` more of them: a sheet longer than allowed.
    With `broken_tail`, XML that does not parse follows the rows: a reader that reads past
    its limit fails on it instead of refusing the rows."""
    rows = [HEADER_ROW, *(data_row(number) for number in range(2, data_rows + more_rows + 2))]
    if broken_tail:
        rows.append('<row r="1048576"><c><v>1</c></row>')  # </v> missing
    return workbook([sheet_xml("".join(rows))])


def lying_directory(unpacked_bytes: int = 200_000_000, declared_bytes: int = 4096) -> bytes:
    """The blank-rows bomb, with its sheet's size in the zip directory (and local header)
    rewritten to `declared_bytes`: the directory says small, the stream inflates big."""
    data = bytearray(blank_rows_bomb(unpacked_bytes))
    name = SHEET_PATH.encode()
    # Local file header: uncompressed size at offset 22; central directory entry: at 24.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                struct.pack_into("<I", data, start + offset, declared_bytes)
            start += 4
    return bytes(data)


def repeated_row_number(rows: int = 5_000_000) -> bytes:
    """A header, one recipient, then `rows` more rows all numbered 2: openpyxl yields
    none of them (not a row past the last), so no row count ever stops the parse; only
    the time and memory bounds do."""
    return workbook(sheet_chunks(HEADER_ROW + data_row(2), '<row r="2"/>', rows * 12))


def shared_strings_bomb(strings: int = 2_000_000, length: int = 0) -> bytes:
    """A tiny sheet over a shared-strings table of `strings` entries, each padded to
    `length` characters: openpyxl loads the whole table before reading any row, about
    170 bytes of objects per entry (slow: tens of seconds per million), and a long
    entry three times its length while it is parsed (fast)."""
    padding = "a" * max(length - 8, 0)

    def entries() -> Iterator[str]:
        yield f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}" count="{strings}" uniqueCount="{strings}">'
        yield from (f"<si><t>{index:x}{padding}</t></si>" for index in range(strings))
        yield f"<!--{random_text(strings * 2 * (16 + len(padding)) // RATIO)}--></sst>"

    sheet = sheet_xml(
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
    )
    return workbook([sheet], shared_strings=joined_chunks(entries()))


# --- building blocks ------------------------------------------------------------------------


def sheet_xml(rows: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>{rows}</sheetData></worksheet>'


def sheet_chunks(first_rows: str, repeated_row: str, unpacked_bytes: int) -> Iterator[str]:
    """The sheet XML in chunks: `first_rows`, then `repeated_row` until `unpacked_bytes`,
    closed by a comment of random text that keeps the compression ratio near RATIO
    (random hex deflates about 2:1, so it is 2 / RATIO of the part)."""
    opening = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>{first_rows}'
    filler = 2 * unpacked_bytes // RATIO
    closing = f"<!--{random_text(filler)}--></sheetData></worksheet>"
    yield opening
    left = unpacked_bytes - len(opening) - len(closing)
    chunk = repeated_row * (CHUNK // len(repeated_row))
    while left >= len(chunk):
        yield chunk
        left -= len(chunk)
    yield repeated_row * (max(left, 0) // len(repeated_row))
    yield closing


def joined_chunks(parts: Iterator[str]) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for part in parts:
        chunk.append(part)
        size += len(part)
        if size >= CHUNK:
            yield "".join(chunk)
            chunk, size = [], 0
    yield "".join(chunk)


def random_text(length: int) -> str:
    return os.urandom(length // 2 + 1).hex()[:length]


def workbook(sheet: Iterator[str] | list[str], shared_strings: Iterator[str] | None = None) -> bytes:
    """A minimal valid XLSX around one sheet given as XML chunks."""
    strings_type = (
        f'<Override PartName="/{STRINGS_PATH}" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        if shared_strings is not None else ""
    )
    strings_rel = (
        f'<Relationship Id="rId2" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
        if shared_strings is not None else ""
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f'<Override PartName="/{SHEET_PATH}" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            f"{strings_type}</Types>"
        ))
        archive.writestr("_rels/.rels", (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE_RELS}">'
            f'<Relationship Id="rId1" Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ))
        archive.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{RELS}">'
            '<sheets><sheet name="Recipients" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE_RELS}">'
            f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f"{strings_rel}</Relationships>"
        ))
        write_streamed(archive, SHEET_PATH, sheet)
        if shared_strings is not None:
            write_streamed(archive, STRINGS_PATH, shared_strings)
    return buffer.getvalue()


def write_streamed(archive: zipfile.ZipFile, name: str, chunks: Iterator[str] | list[str]) -> None:
    with archive.open(name, "w") as part:
        for chunk in chunks:
            part.write(chunk.encode())

"""Hostile workbooks and large files, built when a test needs them (too big, or too easy
to get subtly wrong, to keep as fixed files in tests/hostile/files/). The bombs that
attack the bounded reader itself (blank rows under the ratio guard, a lying zip directory,
endless rows numbered 2, a huge shared-strings table) are D1's, in tests/hostile_files.py.

Each builder returns the bytes of one upload. The XLSX files are minimal but complete
(content types, workbook, relationships, one sheet of inline strings), so openpyxl would
read them if GiftDesk let it: what refuses them is GiftDesk's guard, not a broken file.
"""

from __future__ import annotations

import io
import itertools
import zipfile
import zlib
from functools import cache

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Recipients" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)
SHEET_OPEN = '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
SHEET_CLOSE = "</sheetData></worksheet>"
HEADER = ["name", "email", "amount"]
ROW = ["Ana Hansen", "ana@example.com", "100"]


def cell(column: int, row: int, text: str) -> str:
    return f'<c r="{chr(ord("A") + column)}{row}" t="inlineStr"><is><t>{text}</t></is></c>'


def row_xml(number: int, values: list[str]) -> str:
    cells = "".join(cell(index, number, value) for index, value in enumerate(values))
    return f'<row r="{number}">{cells}</row>'


def sheet_xml(rows: list[list[str]], *, prolog: str = "") -> str:
    body = "".join(row_xml(number, values) for number, values in enumerate(rows, start=1))
    return f'<?xml version="1.0" encoding="UTF-8"?>{prolog}{SHEET_OPEN}{body}{SHEET_CLOSE}'


def write_workbook_parts(archive: zipfile.ZipFile) -> None:
    """Everything of a one-sheet workbook but the sheet itself."""
    archive.writestr("[Content_Types].xml", CONTENT_TYPES)
    archive.writestr("_rels/.rels", ROOT_RELS)
    archive.writestr("xl/workbook.xml", WORKBOOK)
    archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)


def xlsx(sheet: str | bytes, *, extra: dict[str, bytes] | None = None) -> bytes:
    """A workbook with this sheet XML as its only sheet."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        write_workbook_parts(archive)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def valid_xlsx() -> bytes:
    return xlsx(sheet_xml([HEADER, ROW]))


def truncated_xlsx() -> bytes:
    """A real workbook cut off halfway, as an interrupted download leaves it."""
    data = valid_xlsx()
    return data[: len(data) // 2]


def zip_not_a_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("recipients.csv", "name,email,amount\nAna,ana@example.com,100\n")
    return buffer.getvalue()


def ods() -> bytes:
    """An OpenDocument spreadsheet: the mimetype member first, stored, as LibreOffice writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", '<?xml version="1.0"?><office:document-content '
                         'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"/>')
        archive.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest/>')
    return buffer.getvalue()


def encrypted_xlsx() -> bytes:
    """What Excel writes for a password-protected .xlsx: an OLE2 compound file holding the
    streams EncryptionInfo and EncryptedPackage (names in the directory are UTF-16)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    header = header.ljust(512, b"\xff")
    directory = b"".join(name.encode("utf-16-le").ljust(128, b"\0")
                         for name in ("Root Entry", "EncryptionInfo", "EncryptedPackage"))
    return header + directory + bytes(range(256)) * 8


def xxe_xlsx() -> bytes:
    """A sheet whose cell is an external entity pointing at a server file."""
    prolog = '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return xlsx(sheet_xml([HEADER, ["&xxe;", "ana@example.com", "100"]], prolog=prolog))


def billion_laughs_xlsx() -> bytes:
    """Ten levels of ten entity references each: 10^9 "lol"s from under 1 KB of XML."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 10)
    ]
    prolog = f"<!DOCTYPE worksheet [{''.join(entities)}]>"
    return xlsx(sheet_xml([HEADER, ["&lol9;", "ana@example.com", "100"]], prolog=prolog))


@cache
def deflate_bomb_xlsx(inflated_bytes: int = 100 * 1024 * 1024) -> bytes:
    """One sheet of identical empty rows that inflates about 700-fold: megabytes of XML in a
    few hundred KB (100 MB by default)."""
    return _blank_rows_bomb(_repeated(b"<row/>" * 10_000, inflated_bytes))


def _repeated(piece: bytes, total: int):
    for _ in range(total // len(piece)):
        yield piece


def _blank_rows_bomb(pieces) -> bytes:
    """A workbook whose sheet is a header and then `pieces`; the deflate stream is built
    piece by piece, so building it takes no more memory than the bomb itself."""
    head = sheet_xml([HEADER]).removesuffix(SHEET_CLOSE).encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    chunks, crc, size = [], 0, 0
    for part in itertools.chain([head], pieces, [SHEET_CLOSE.encode()]):
        chunks.append(compressor.compress(part))
        crc, size = zlib.crc32(part, crc), size + len(part)
    chunks.append(compressor.flush())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        write_workbook_parts(archive)
        info = zipfile.ZipInfo("xl/worksheets/sheet1.xml", date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        _write_raw(archive, info, b"".join(chunks), crc=crc, size=size)
    return buffer.getvalue()


def _write_raw(archive: zipfile.ZipFile, info: zipfile.ZipInfo, deflated: bytes, *, crc: int, size: int) -> None:
    """Append a member whose deflated bytes are given (zipfile has no public way to)."""
    info.CRC, info.compress_size, info.file_size = crc, len(deflated), size
    info.header_offset = archive.fp.tell()
    archive._writecheck(info)
    archive.fp.write(info.FileHeader(zip64=False))
    archive.fp.write(deflated)
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive.start_dir = archive.fp.tell()


@cache
def many_members_zip(members: int = 10_001) -> bytes:
    """A workbook padded with thousands of tiny parts: each costs work to list and open."""
    extra = {f"xl/media/part{index}.bin": b"x" for index in range(members)}
    return xlsx(sheet_xml([HEADER, ROW]), extra=extra)


def blank_rows_xlsx(blank_rows: int = 60_000) -> bytes:
    """A header, then one recipient after `blank_rows` empty rows: a few hundred bytes that
    make a reader walk sixty thousand rows. Blank rows count toward the row limit."""
    rows = row_xml(1, HEADER) + row_xml(blank_rows + 2, ROW)
    return xlsx(f'<?xml version="1.0" encoding="UTF-8"?>{SHEET_OPEN}{rows}{SHEET_CLOSE}')


def oversize_csv(size: int) -> bytes:
    """A well-formed CSV just over `size` bytes."""
    line = b"Ana Hansen,ana@example.com,100\n"
    head = b"name,email,amount\n"
    return head + line * ((size - len(head)) // len(line) + 1)


def too_many_rows_csv(rows: int) -> bytes:
    return b"name,email,amount\n" + b"".join(b"R%d,r%d@example.com,100\n" % (n, n) for n in range(rows))


def long_field_csv(column: str, length: int) -> bytes:
    values = {"name": "Ana Hansen", "email": "ana@example.com", "amount": "100", "message": "Thanks"}
    values[column] = "x" * length
    return ("name,email,amount,message\n" + ",".join(values[key] for key in
                                                   ("name", "email", "amount", "message")) + "\n").encode()


# --- Title rows above the header (issue 10, finding 7) --------------------------------------

TITLE = "Gift cards: summer party 2026"


def title_rows_csv() -> bytes:
    """An HR export: a title line without delimiters, a blank line, then a semicolon header."""
    return f"{TITLE}\n\nname;email;amount\nAna Hansen;ana@example.com;100\n".encode()


def title_rows_xlsx() -> bytes:
    """The same as a workbook: title on row 1, an empty row 2, the header on row 3."""
    rows = row_xml(1, [TITLE]) + row_xml(3, HEADER) + row_xml(4, ROW)
    return xlsx(f'<?xml version="1.0" encoding="UTF-8"?>{SHEET_OPEN}{rows}{SHEET_CLOSE}')


def endless_titles_csv(size: int = 10 * 1024 * 1024) -> bytes:
    """Title-like lines to the end of a 10 MB file, no header: refused after ten of them."""
    line = f"{TITLE}, page 1\n".encode()
    return line * (size // len(line))


def endless_titles_xlsx(rows: int = 300_000) -> bytes:
    """A sheet of one title-like cell per row, never a header."""
    body = "".join(row_xml(number, [TITLE]) for number in range(1, rows + 1))
    return xlsx(f'<?xml version="1.0" encoding="UTF-8"?>{SHEET_OPEN}{body}{SHEET_CLOSE}')

"""Issue 12: the workbook reader's own shared-strings reader gives exactly openpyxl's strings,
and the table sent back by the child (each distinct text once) is the table read in process."""

from __future__ import annotations

import io

import openpyxl
import xlsxwriter
from openpyxl.reader.strings import read_string_table

from orders.spreadsheet import read_table
from orders.spreadsheet.limits import ReadLimits
from orders.spreadsheet.read import read_shared_strings, read_xlsx

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

SHARED_STRINGS = f"""<?xml version="1.0" encoding="UTF-8"?>
<sst xmlns="{MAIN}" xmlns:o="urn:other" count="10" uniqueCount="10">
  <si><t>Jane</t></si>
  <si><t xml:space="preserve">  padded  </t></si>
  <si><r><rPr><b/><sz val="11"/></rPr><t>Bold</t></r><r><t xml:space="preserve"> and plain</t></r></si>
  <si><t>Base</t><r><t>+run</t></r><rPh sb="0" eb="1"><t>phonetic, left out</t></rPh><phoneticPr fontId="1"/></si>
  <si><t>Line_x005F_x000D_break</t></si>
  <si/>
  <si><t/></si>
  <si><t>first</t><t>last wins</t></si>
  <si><o:t>any namespace</o:t></si>
  <si><r><t>one</t><t>two</t></r><r/><t>tail</t></si>
</sst>""".encode()


def test_shared_strings_read_as_openpyxl_reads_them():
    ours = read_shared_strings(io.BytesIO(SHARED_STRINGS))
    assert ours == read_string_table(io.BytesIO(SHARED_STRINGS))
    assert ours == ["Jane", "  padded  ", "Bold and plain", "Base+run", "Line_x000D_break", "", "", "last wins",
                    "any namespace", "tailtwo"]


def rich_workbook() -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet()
    bold = workbook.add_format({"bold": True})
    sheet.write_row(0, 0, ["Name", "E-mail", "Amount", "Message"])
    for row in range(1, 40):
        sheet.write_row(row, 0, [f"Person {row}", f"p{row}@example.com", 50, "Thank you!"])
    sheet.write_rich_string(5, 3, "Dear ", bold, "Jane", ", thanks")
    sheet.write_string(6, 3, "  kept spaces  ")
    workbook.close()
    return buffer.getvalue()


def test_a_workbook_reads_as_plain_openpyxl_gives_its_cells():
    data = rich_workbook()
    table = read_xlsx(data, "rich.xlsx", ReadLimits.from_settings())
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    plain = [[("" if value is None else str(value)) for value in row]
             for row in workbook.worksheets[0].iter_rows(min_row=2, values_only=True)]
    workbook.close()
    assert [list(row.values) for row in table.rows] == plain
    assert table.rows[4].cells["message"] == "Dear Jane, thanks"
    assert table.rows[5].cells["message"] == "  kept spaces  "


def test_the_table_from_the_child_is_the_table_read_in_process():
    data = rich_workbook()
    through_child = read_table(data, "rich.xlsx")
    assert through_child == read_xlsx(data, "rich.xlsx", ReadLimits.from_settings())
    # Each distinct text was sent once: the rows share it.
    assert through_child.rows[0].values[3] is through_child.rows[1].values[3]

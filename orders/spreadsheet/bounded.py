"""A workbook parsed in a child process with bounded memory and time.

An XLSX is XML in a zip: a 1 MB upload can hold hundreds of MB of sheet XML or millions
of shared strings, and openpyxl then takes minutes and gigabytes in the web process. So
``read_workbook`` hands the bytes to a fresh Python interpreter that caps its own address
space (RLIMIT_AS) and CPU time, reads the workbook with ``read.read_xlsx``, and writes the
``Table`` back as JSON on its stdout; the parent kills it after a wall-clock timeout. Past
either bound the upload is refused with a message that says what to do, and nothing else
happens: the web process never parses the workbook's XML.

A new interpreter (``subprocess``, not ``multiprocessing``) because it works the same
under runserver, gunicorn and pytest, with threads or without, whatever the start method;
it does not set Django up (the limits come as an argument, ``read`` and ``headers`` need
no Django), so it costs an interpreter and openpyxl's import: 0.3 s on the test machine
(bench/hostile_spreadsheets.py).
JSON, not pickle, on the way back: the child has parsed hostile input, and the parent
should not unpickle what it wrote.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from itertools import chain
from pathlib import Path

from orders.spreadsheet.errors import FileRefused
from orders.spreadsheet.headers import SourceRow, Table, map_header
from orders.spreadsheet.limits import ReadLimits

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT_OUT_OF_MEMORY = 3
CHILD_GC_THRESHOLDS = (50_000, 20, 20)  # Python's default: (700, 10, 10)
MEGABYTE = 1024 * 1024
CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from orders.spreadsheet.bounded import child_main; child_main(sys.argv[2])"
)
REMEDY = "Save it as CSV, or remove the empty rows and unused cells, and upload it again."


def read_workbook(data: bytes, filename: str, limits: ReadLimits) -> Table:
    """Read an XLSX (its zip directory already checked) in a bounded child process."""
    arguments = json.dumps({"limits": limits.as_dict(), "filename": filename})
    command = [sys.executable, "-c", CHILD, str(PROJECT_ROOT), arguments]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        output, errors = process.communicate(data, timeout=limits.read_seconds)
    except subprocess.TimeoutExpired:
        raise refuse_too_slow(limits) from None
    finally:
        # Killed and reaped on every way out (timeout, an exception, Ctrl-C): no zombie,
        # no orphan still parsing.
        if process.poll() is None:
            process.kill()
        process.wait()
    return table_or_refusal(process.returncode, output, errors, limits)


def table_or_refusal(code: int, output: bytes, errors: bytes, limits: ReadLimits) -> Table:
    if code == 0:
        try:
            answer = json.loads(output)
            if "refused" in answer:
                raise FileRefused(answer["refused"])
            return table_from_json(answer["table"])
        except (ValueError, KeyError, TypeError):
            logger.exception("Workbook reader gave an answer that is not a table")
            raise FileRefused(f"This workbook could not be read. {REMEDY}") from None
    if code == -signal.SIGXCPU:
        raise refuse_too_slow(limits)
    if code != EXIT_OUT_OF_MEMORY:
        # Killed by a signal (a C library failing an allocation aborts) or a Python error
        # we did not expect: the latter is ours to fix, so keep what it said.
        logger.warning("Workbook reader exited with %s: %s", code, errors[-2000:].decode(errors="replace"))
    raise refuse_too_much_memory(limits)


def refuse_too_much_memory(limits: ReadLimits) -> FileRefused:
    return FileRefused(
        f"This workbook needs more than {limits.read_memory_mb:,} MB of memory to read, far more "
        f"than a recipient list should; GiftDesk stopped reading it. {REMEDY}"
    )


def refuse_too_slow(limits: ReadLimits) -> FileRefused:
    seconds = f"{limits.read_seconds:g}"
    return FileRefused(
        f"This workbook takes more than {seconds} seconds to read, far longer than a recipient "
        f"list should; GiftDesk stopped reading it. {REMEDY}"
    )


# --- the table as JSON --------------------------------------------------------------------


def table_to_json(table: Table, indexes: dict[str, int]) -> dict:
    """The table, each distinct cell text sent once (``strings``) and every cell as its
    index there: the parent then decodes "DKK" once, not once per row, and its rows share
    the texts, as openpyxl's shared strings do in the child (50,000 rows: 20 MB less at
    the peak of the web process). A row's mapped cells are sent only where they are not in
    its `values` (a blank cell past the last filled one)."""
    beyond = [cells_beyond(row, indexes) for row in table.rows]
    texts = dict.fromkeys(chain.from_iterable(row.values for row in table.rows))
    texts.update(dict.fromkeys(text for cells in beyond for text in cells.values()))
    position = {text: number for number, text in enumerate(texts)}
    fields = dict(vars(table))
    fields["rows"] = [
        [row.number, row.extra_cells_error, list(map(position.__getitem__, row.values)),
         {name: position[text] for name, text in cells.items()}]
        for row, cells in zip(table.rows, beyond)
    ]
    fields["strings"] = list(texts)
    fields["indexes"] = indexes
    return fields


def cells_beyond(row: SourceRow, indexes: dict[str, int]) -> dict[str, str]:
    if len(row.values) > max(indexes.values(), default=-1):
        return {}  # every mapped cell is in `values` (most rows)
    return {
        name: row.cells[name]
        for name, index in indexes.items()
        if index >= len(row.values) and row.cells[name]
    }


def table_from_json(fields: dict) -> Table:
    indexes = list(fields.pop("indexes").items())
    strings = fields.pop("strings")
    rows = fields.pop("rows")
    # Replaced in place: each row's decoded list is freed as soon as its SourceRow exists.
    for position, (number, extra, refs, beyond) in enumerate(rows):
        values = tuple([strings[ref] for ref in refs])
        width = len(values)
        rows[position] = SourceRow(
            number=number,
            cells={
                name: values[index] if index < width else (strings[beyond[name]] if name in beyond else "")
                for name, index in indexes
            },
            extra_cells_error=extra,
            values=values,
        )
    return Table(rows=rows, **fields)


# --- the child ----------------------------------------------------------------------------


def child_main(arguments: str) -> None:
    """Entry point of the child: workbook bytes on stdin, one JSON answer on stdout."""
    parsed = json.loads(arguments)
    limits, filename = ReadLimits(**parsed["limits"]), parsed["filename"]
    limit_own_resources(limits)
    # openpyxl warns once per odd cell (dates out of range, unknown extensions): a hostile
    # sheet would fill the stderr pipe with them. stderr is for our own failures.
    warnings.simplefilter("ignore")
    # Reading makes millions of objects that all live until the table is sent, hardly a
    # cycle among them: at the default thresholds the cycle collector walks the growing
    # heap again and again (20% of reading 50,000 rows). Collected rarely instead; the
    # address-space cap above still bounds what this process may hold.
    gc.set_threshold(*CHILD_GC_THRESHOLDS)
    try:
        # Imported under the limits: openpyxl's import is part of what the child may use.
        from orders.spreadsheet.read import read_xlsx

        data = sys.stdin.buffer.read()
        try:
            table = read_xlsx(data, filename, limits)
            answer = {"table": table_to_json(table, map_header(table.headers).indexes)}
        except FileRefused as refusal:
            answer = {"refused": refusal.message}
        del data
        sys.stdout.write(json.dumps(answer, ensure_ascii=True))
        sys.stdout.flush()
    except MemoryError:
        # Nothing written that the parent could mistake for an answer: just the code.
        os._exit(EXIT_OUT_OF_MEMORY)


def limit_own_resources(limits: ReadLimits) -> None:
    """Cap this process's address space and CPU time (set here, not in a preexec_fn,
    which is unsafe in a parent with threads such as gunicorn's or the runserver's)."""
    import resource

    memory = limits.read_memory_mb * MEGABYTE
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # A backstop for a parent that died before its timeout: SIGXCPU ends the child.
    seconds = int(limits.read_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))

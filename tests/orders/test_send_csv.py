"""`manage.py send_csv`: its checks, exit codes, and a real end-to-end send with a worker."""

from pathlib import Path

import pytest

from orders.models import Batch, Order, OrderStatus
from tests.commands import send_csv
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipients.csv"


@pytest.mark.worker
def test_the_example_file_is_delivered_by_a_worker_with_one_card_per_order(
    worker, emulated_gogift_account, gogift_emulator
):
    code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name,
                            "--product", GLOBAL_GIFT_CARD_ID, "--wait", "--timeout", "120")

    assert code == 1, output  # delivered, but the file has two invalid rows
    assert "Row 5, email" in output and "Row 9, amount" in output
    batch = Batch.objects.get()
    orders = list(batch.orders.all())
    assert len(orders) == 10
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}, worker.output()
    for order in orders:
        cards = [entry for entry in gogift_emulator.ledger if entry.reference == order.reference]
        assert len(cards) == 1 and cards[0].amount == order.amount
        assert cards[0].recipient_email == order.recipient.email
    assert len(gogift_emulator.ledger) == 10
    assert "Finished: 10 delivered." in output


def test_dry_run_checks_everything_and_creates_nothing(emulated_gogift_account):
    code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name,
                            "--product", GLOBAL_GIFT_CARD_ID, "--dry-run")
    assert code == 1
    assert "10 valid rows (11000.00 DKK), 2 invalid rows." in output
    assert "Dry run: nothing was created." in output
    assert not Batch.objects.exists()


def test_strict_creates_nothing_when_a_row_is_invalid(emulated_gogift_account):
    code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name,
                            "--product", GLOBAL_GIFT_CARD_ID, "--strict")
    assert code == 1 and "--strict: nothing was created" in output
    assert not Order.objects.exists()


def test_a_clean_file_exits_zero_and_queues_every_row(emulated_gogift_account, tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_text("Name;E-mail;Value\nAna;ana@example.com;100\nBo;bo@example.com;200,00\n", encoding="utf-8")
    code, output = send_csv(clean, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID)
    assert code == 0, output
    assert list(Order.objects.values_list("status", flat=True)) == [OrderStatus.QUEUED] * 2


def test_a_refused_file_exits_two_and_creates_nothing(emulated_gogift_account, tmp_path):
    workbook = tmp_path / "old.xls"
    workbook.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    code, output = send_csv(workbook, "--account", emulated_gogift_account.name)
    assert code == 2 and "CSV" in output and "XLSX" in output.upper()
    assert not Batch.objects.exists()


@pytest.mark.parametrize("option, value, words", [
    ("--account", "Nope", "no account named 'Nope'"),
    ("--product", "999", "no active product with id or SKU '999'"),
    ("--amount", "ten", "--amount 'ten' is not an amount; write it like 50 or 50.00"),
    ("--amount", "0", "--amount '0' is not more than 0"),
    ("--user", "ghost", "no user named 'ghost'"),
])
def test_a_bad_option_exits_two_with_a_reason(emulated_gogift_account, option, value, words):
    args = [EXAMPLE, "--account", emulated_gogift_account.name, option, value]
    code, output = send_csv(*args)
    assert code == 2 and words in output
    assert not Batch.objects.exists()


def test_wait_exits_three_when_orders_fail(worker, emulated_gogift_account, gogift_emulator, tmp_path):
    # 5010 passes the import check once the product's maximum is lifted locally, so the
    # provider refuses it: a failed order, while its neighbour in the same basket is bought.
    from providers.models import Product

    Product.objects.filter(account=emulated_gogift_account, provider_product_id=GLOBAL_GIFT_CARD_ID).update(
        max_amount=10000)
    rows = tmp_path / "rows.csv"
    rows.write_text("name,email,amount\nAna,ana@example.com,100\nBo,bo@example.com,5010\n", encoding="utf-8")
    code, output = send_csv(rows, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--wait", "--timeout", "120")
    assert code == 3, output
    statuses = dict(Order.objects.values_list("recipient__email", "status"))
    assert statuses == {"ana@example.com": OrderStatus.DELIVERED, "bo@example.com": OrderStatus.FAILED}
    assert "5010" in output and "Finished: 1 delivered, 1 failed." in output
    assert [entry.recipient_email for entry in gogift_emulator.ledger] == ["ana@example.com"]


# --- Four eyes (issue 9): a batch reaching an approval threshold waits, and send_csv says so ----------


@pytest.fixture
def uploader(db):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("uploader", is_staff=True)
    user.groups.add(Group.objects.get(name="Senders"))
    return user


@pytest.mark.parametrize("extra", [[], ["--wait", "--timeout", "5"]], ids=["plain", "--wait"])
def test_a_batch_needing_approval_exits_four_and_queues_nothing(settings, emulated_gogift_account, gogift_emulator,
                                                                uploader, tmp_path, extra):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    rows = tmp_path / "rows.csv"
    rows.write_text("name,email,amount\nAna,ana@example.com,600\nBo,bo@example.com,400\n", encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--user", "uploader", *extra)

    assert code == 4, output
    batch = Batch.objects.get()
    assert (batch.state, batch.created_by, batch.send_requested_by) == ("awaiting_approval", uploader, uploader)
    assert list(Order.objects.values_list("status", flat=True)) == [OrderStatus.PENDING] * 2
    assert (
        f"Batch {batch.pk} “rows.csv” needs approval before it is sent: 1,000.00 DKK reaches the approval "
        "threshold of 1,000.00 DKK.\n"
        f"Nothing was queued; an approver other than uploader runs `manage.py approve_batch {batch.pk} --user <name>`."
    ) in output
    assert "queued on" not in output and "Finished" not in output  # --wait has nothing to wait for
    assert gogift_emulator.ledger == []


def test_exit_four_wins_over_invalid_rows(settings, emulated_gogift_account, uploader):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=10000"

    code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--user", "uploader")

    assert code == 4, output  # not 1: nothing was sent, which a script must know first
    assert "Row 5, email" in output and "10 valid rows (11000.00 DKK), 2 invalid rows." in output
    assert "11,000.00 DKK reaches the approval threshold of 10,000.00 DKK" in output
    batch = Batch.objects.get()
    assert batch.rejected_row_count == 2  # the approver sees what the upload left out
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}


def test_under_the_threshold_send_csv_queues_as_before(settings, emulated_gogift_account, uploader, tmp_path):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    rows = tmp_path / "rows.csv"
    rows.write_text("name,email,amount\nAna,ana@example.com,990\n", encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--user", "uploader")

    assert code == 0, output
    assert "1 order queued on" in output
    assert list(Order.objects.values_list("status", flat=True)) == [OrderStatus.QUEUED]


def test_dry_run_and_strict_never_ask_for_approval(settings, emulated_gogift_account):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"
    for option in ("--dry-run", "--strict"):
        code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name,
                                "--product", GLOBAL_GIFT_CARD_ID, option)
        assert code == 1, output
        assert "approval" not in output
    assert not Batch.objects.exists()


# --- issue 10: what each kind of file exits with ------------------------------------------------


def write(tmp_path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("text, header_row", [("name,email,amount\n", 1), ("name,email,amount\n\n,,\n", 1),
                                              ("Recipients\nname,email,amount\n", 2)],
                         ids=["header-only", "blank-rows", "title-and-header"])
@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--strict"]], ids=["plain", "dry-run", "strict"])
def test_a_header_without_recipient_rows_exits_two_naming_the_header_row(emulated_gogift_account, tmp_path, text,
                                                                           header_row, extra):
    code, output = send_csv(write(tmp_path, text), "--account", emulated_gogift_account.name,
                            "--product", GLOBAL_GIFT_CARD_ID, *extra)
    assert code == 2, output
    assert output == (f"Refused: The header is on row {header_row} but there are no recipient rows under it. "
                      "Add one row per recipient below the header and upload it again.\n")
    assert not Batch.objects.exists()


def test_a_file_whose_every_row_is_invalid_exits_one_and_creates_nothing(emulated_gogift_account, tmp_path):
    path = write(tmp_path, "name,email,amount\nAna,ana@,100\nBo,bo@example.com,٥٠\n")
    code, output = send_csv(path, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID)
    assert code == 1, output  # some (here: all) rows invalid, as the README says; nothing was created
    assert "Row 3, amount: '٥٠' is not an amount: only the digits 0-9 are accepted" in output
    assert "0 valid rows (nothing), 2 invalid rows." in output
    assert "No valid rows: nothing was created." in output
    assert not Batch.objects.exists()


def test_a_nul_byte_in_a_cell_is_a_row_error_not_a_refused_file(emulated_gogift_account, tmp_path):
    path = write(tmp_path, "name,email,amount\nAna\x00Hansen,ana@example.com,100\nBo,bo@example.com,100\n")
    code, output = send_csv(path, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--dry-run")
    assert code == 1, output
    assert "Row 2, name: This cell contains an invisible control character (U+0000); retype it." in output
    assert "1 valid row (100.00 DKK), 1 invalid row." in output


def test_a_header_lacking_name_and_amount_is_refused_naming_both(emulated_gogift_account, tmp_path):
    code, output = send_csv(write(tmp_path, "email,phone\nana@example.com,1\n"), "--account",
                            emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID)
    assert code == 2, output
    assert ("Refused: The header row (row 1) has no name (or first_name and last_name) column, and no amount "
            "column (needed unless you give a default amount).") in output


AMOUNT_EXAMPLE = "write it like 50 or 50.00, without a currency sign or thousands separator."


@pytest.mark.parametrize("value, refusal", [
    ("٥٠", f"'٥٠' is not an amount: only the digits 0-9 are accepted; {AMOUNT_EXAMPLE}"),
    ("５０", f"'５０' is not an amount: only the digits 0-9 are accepted; {AMOUNT_EXAMPLE}"),
    # Decimal() would read these as 100, NaN and Infinity (the last two with a traceback).
    ("1e2", f"'1e2' is not an amount; {AMOUNT_EXAMPLE}"),
    ("NaN", f"'NaN' is not an amount; {AMOUNT_EXAMPLE}"),
    ("Infinity", f"'Infinity' is not an amount; {AMOUNT_EXAMPLE}"),
    ("50.001", f"'50.001' has more than two decimals; {AMOUNT_EXAMPLE}"),
], ids=["arabic-indic", "full-width", "exponent", "nan", "infinity", "three-decimals"])
def test_a_default_amount_is_read_as_the_amount_column_reads_it(emulated_gogift_account, value, refusal):
    code, output = send_csv(EXAMPLE, "--account", emulated_gogift_account.name, "--amount", value)
    assert (code, output) == (2, f"Refused: --amount {refusal}\n")
    assert not Batch.objects.exists()


def test_a_default_amount_with_a_comma_is_read_as_the_amount_column_reads_it(emulated_gogift_account, tmp_path):
    path = write(tmp_path, "name,email\nAna,ana@example.com\n")
    code, output = send_csv(path, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--amount", "250,00", "--dry-run")
    assert code == 0 and "1 valid row (250.00 DKK), 0 invalid rows." in output, output


def test_a_file_over_the_byte_limit_says_20_mb(emulated_gogift_account, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as file:
        file.truncate(21 * 1024 * 1024)
    code, output = send_csv(path, "--account", emulated_gogift_account.name)
    assert code == 2
    assert output == "Refused: The file is 21 MB; the limit is 20 MB. Split it into smaller files.\n"

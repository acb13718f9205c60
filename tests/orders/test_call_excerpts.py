"""An order's part of a provider call (orders.call_excerpts): a basket's other cards give way
to a counted marker, and no other recipient's name or email is ever left in what is shown."""

import json

import pytest

from orders.call_excerpts import ANOTHER_RECIPIENT, Card, CallCards, OtherRecipients, body_excerpt, other_emails_replaced

CARDS = 50
THIS = 17


def card(index: int) -> Card:
    return Card(identifiers=frozenset({f"gd-{index:04d}aaaabbbb", f"r{index}@example.com"}),
                people=frozenset({f"recipient {index}", f"r{index}@example.com"}))


def basket_cards(**options) -> CallCards:
    return CallCards(cards=tuple(card(index) for index in range(CARDS)), this=THIS, **options)


def line(index: int) -> dict:
    # Names and emails in clear: the worst case (a body stored before the allow-list, or a
    # provider echoing them in a field it vouches for).
    return {"deliveryMethod": "Email", "recipientName": f"Recipient {index}", "recipientEmail": f"r{index}@example.com",
            "giftcardValue": 100 + index, "valueCurrency": "DKK", "reference": f"GD-{index:04d}AAAABBBB"}


BASKET_REQUEST = json.dumps({"id": "330000000000000001", "paymentCurrency": "DKK", "reference": "gd-submission-key",
                             "addProducts": [line(index) for index in range(CARDS)]})
BASKET_RESPONSE = json.dumps({
    "id": "330000000000000001", "totalPaymentAmountWithTax": 7225,
    "deliveries": [{"id": f"33{index:04d}", "recipientName": f"Recipient {index}",
                    "recipientEmail": f"r{index}@example.com",
                    "productLines": [{"lineId": f"L{index}", "giftcardValue": 100 + index,
                                      "reference": f"GD-{index:04d}AAAABBBB"}],
                    "fees": []}
                   for index in range(CARDS)],
    "payments": [],
})


def others_named(text: str) -> list[str]:
    return [index for index in range(CARDS) if index != THIS and (
        f"r{index}@example.com" in text or f"Recipient {index}\"" in text or f"Recipient {index} " in text)]


def test_a_fifty_card_basket_request_shows_only_this_card_and_counts_the_others():
    excerpt = body_excerpt(BASKET_REQUEST, basket_cards())

    shown = json.loads(excerpt.text)
    assert shown["addProducts"] == [
        "… 17 other cards of this call hidden", line(THIS), "… 32 other cards of this call hidden"]
    assert shown["id"] == "330000000000000001" and shown["reference"] == "gd-submission-key"  # the call's own
    assert excerpt.hidden == 49 and not excerpt.note
    assert others_named(excerpt.text) == []
    assert "GD-0016AAAABBBB" not in excerpt.text and "GD-0018AAAABBBB" not in excerpt.text


def test_a_fifty_card_basket_response_keeps_its_structure_and_this_cards_nested_lines():
    excerpt = body_excerpt(BASKET_RESPONSE, basket_cards())

    shown = json.loads(excerpt.text)
    assert list(shown) == ["id", "totalPaymentAmountWithTax", "deliveries", "payments"]
    [before, mine, after] = shown["deliveries"]
    assert (before, after) == ("… 17 other cards of this call hidden", "… 32 other cards of this call hidden")
    assert mine["recipientEmail"] == f"r{THIS}@example.com" and mine["productLines"][0]["lineId"] == f"L{THIS}"
    assert excerpt.hidden == 49 and others_named(excerpt.text) == []
    assert excerpt.text.startswith('{\n  "id": ')  # pretty-printed, indent 2


def test_another_recipient_quoted_in_a_kept_value_is_replaced():
    refusal = json.dumps({"error": "invalid_amount",
                          "message": "recipients[3].amount 60 USD for r3@example.com (Recipient 3) is not available"})

    excerpt = body_excerpt(refusal, basket_cards())

    assert json.loads(excerpt.text)["message"] == (
        f"recipients[3].amount 60 USD for {ANOTHER_RECIPIENT} ({ANOTHER_RECIPIENT}) is not available")
    assert excerpt.hidden == 0


def test_a_name_is_replaced_only_as_a_whole_word():
    # "Recipient 1" is another card's recipient; "Recipient 17" is this card's.
    excerpt = body_excerpt(json.dumps({"message": "Sent to Recipient 17, not to Recipient 1."}), basket_cards())

    assert json.loads(excerpt.text)["message"] == f"Sent to Recipient 17, not to {ANOTHER_RECIPIENT}."


def test_entries_deep_inside_objects_and_lists_of_lists_are_narrowed_too():
    body = json.dumps({"data": {"result": {"orders": [[{"ref": f"GD-{index:04d}AAAABBBB"}] for index in range(CARDS)]},
                                "errors": [{"reference": "GD-0003AAAABBBB", "error": "bad email"},
                                           {"error": "the basket total changed"}]}})

    excerpt = body_excerpt(body, basket_cards())

    shown = json.loads(excerpt.text)["data"]
    assert shown["result"]["orders"][1] == [{"ref": f"GD-{THIS:04d}AAAABBBB"}]
    assert len(shown["result"]["orders"]) == 3
    # An error about another card goes; one about the whole call stays.
    assert shown["errors"] == ["… 1 other card of this call hidden", {"error": "the basket total changed"}]
    assert excerpt.hidden == 50


def test_a_map_keyed_by_card_keeps_only_this_cards_key():
    body = json.dumps({"cards": {f"GD-{index:04d}AAAABBBB": {"status": "ok"} for index in range(3)}})
    cards = CallCards(cards=tuple(card(index) for index in range(3)), this=1)

    shown = json.loads(body_excerpt(body, cards).text)

    assert shown["cards"] == {"GD-0001AAAABBBB": {"status": "ok"}, "…": "… 2 other cards of this call hidden"}


def test_lists_that_carry_cards_by_position_are_matched_by_position():
    entry = {"firstName": "[redacted]", "email": "[redacted]", "amount": 50}
    body = json.dumps({"productId": "GC-AMAZON-USD", "recipients": [dict(entry, amount=index) for index in range(CARDS)]})

    excerpt = body_excerpt(body, basket_cards(cards_in_order_lists=frozenset({"recipients"})))

    assert json.loads(excerpt.text)["recipients"] == [
        "… 17 other cards of this call hidden", dict(entry, amount=THIS), "… 32 other cards of this call hidden"]


def test_a_list_by_position_of_another_length_shows_none_of_its_entries():
    body = json.dumps({"recipients": [{"amount": 1}, {"amount": 2}, {"amount": 3}]})

    excerpt = body_excerpt(body, basket_cards(cards_in_order_lists=frozenset({"recipients"})))

    assert json.loads(excerpt.text)["recipients"] == ["… 3 cards of this call hidden: which is this card's cannot be told"]


def test_a_call_that_carried_only_this_card_is_shown_whole():
    body = json.dumps({"line_items": [{"product_id": "gc", "amount": 5000}], "customer": {"email": "r0@example.com"}})
    alone = CallCards(cards=(card(0),), this=0)

    excerpt = body_excerpt(body, alone)

    assert json.loads(excerpt.text) == json.loads(body) and excerpt.hidden == 0


def test_a_text_body_is_shown_when_it_names_no_other_card():
    excerpt = body_excerpt("[not JSON: 512 characters, not recorded]", basket_cards())

    assert excerpt.text == "[not JSON: 512 characters, not recorded]" and not excerpt.note


def test_a_text_body_naming_another_card_is_not_shown():
    cut_short = BASKET_RESPONSE[:8000]  # a stored answer cut at its limit is no longer JSON

    excerpt = body_excerpt(cut_short, basket_cards())

    assert excerpt.text == "" and "8,000 characters" in excerpt.note and "other cards of this call" in excerpt.note
    assert others_named(excerpt.note) == []


def test_a_text_body_naming_another_recipient_only_by_name_is_not_shown():
    excerpt = body_excerpt("Delivery failed for Recipient 4.", basket_cards())

    assert excerpt.text == "" and excerpt.note


def test_an_empty_body_shows_nothing():
    for body in ("", "  \n"):
        excerpt = body_excerpt(body, basket_cards())
        assert (excerpt.text, excerpt.note, excerpt.hidden) == ("", "", 0)


def test_an_identifier_two_cards_share_tells_nothing_apart():
    # One person, two cards in one basket: the email names both, the references tell them apart.
    twins = CallCards(cards=(Card(identifiers=frozenset({"gd-aaaa0001", "same@example.com"}), people=frozenset()),
                             Card(identifiers=frozenset({"gd-aaaa0002", "same@example.com"}), people=frozenset())),
                      this=0)
    body = json.dumps({"lines": [{"email": "same@example.com", "reference": "GD-AAAA0001"},
                                 {"email": "same@example.com", "reference": "GD-AAAA0002"}]})

    shown = json.loads(body_excerpt(body, twins).text)

    assert shown["lines"] == [{"email": "same@example.com", "reference": "GD-AAAA0001"},
                              "… 1 other card of this call hidden"]


def person(name: str, email: str, reference: str) -> Card:
    return Card(identifiers=frozenset({reference.casefold(), email.casefold()}), people=frozenset({name, email}))


@pytest.mark.parametrize("name", ["Jürgen Strauß", "İlker Yılmaz"])
def test_a_name_whose_letters_change_when_casefolded_is_still_replaced(name):
    # "Strauß" casefolds to "strauss" and "İ" to "i̇": searched as spelled, ignoring case.
    cards = CallCards(cards=(person("Mette Holm", "mette@example.com", "GD-0001AAAABBBB"),
                             person(name, "other@example.com", "GD-0002AAAABBBB")), this=0)
    refusal = json.dumps({"message": f"Delivery to {name} refused; to Mette Holm accepted."}, ensure_ascii=True)

    excerpt = body_excerpt(refusal, cards)

    assert json.loads(excerpt.text)["message"] == f"Delivery to {ANOTHER_RECIPIENT} refused; to Mette Holm accepted."
    assert cards.others.replaced(f"Sent to {name}, OTHER@example.com.") == (
        f"Sent to {ANOTHER_RECIPIENT}, {ANOTHER_RECIPIENT}.")


@pytest.mark.parametrize(("own", "other"), [("Lars Østergaard", "Lars"), ("Jürgen Strauß", "Jürgen")])
def test_this_cards_own_name_stays_whole_when_another_recipients_name_is_part_of_it(own, other):
    others = OtherRecipients.of({other, "other@example.com"}, own={own, "own@example.com"})

    assert others.replaced(f"{own} and {other}") == f"{own} and {ANOTHER_RECIPIENT}"


def test_a_body_cut_short_is_withheld_even_when_its_names_are_escaped():
    # A stored body escapes letters: "Lars \u00d8stergaard" names another recipient unseen.
    cards = CallCards(cards=(person("Mette Holm", "mette@example.com", "GD-0001AAAABBBB"),
                             person("Lars Østergaard", "lars@example.com", "GD-0002AAAABBBB")), this=0)
    cut_short = json.dumps({"deliveries": [{"recipientName": "Lars Østergaard", "note": "x" * 200}]})[:120]
    assert "\\u00d8stergaard" in cut_short

    excerpt = body_excerpt(cut_short, cards)

    assert excerpt.text == "" and "cut short" in excerpt.note and "1 other card of this call" in excerpt.note
    assert "withheld to protect their recipients" in excerpt.note


def test_a_text_body_of_a_call_with_other_cards_is_withheld_even_when_it_names_none():
    excerpt = body_excerpt("Service unavailable, try again later.", basket_cards())

    assert excerpt.text == "" and "is not JSON" in excerpt.note and "49 other cards of this call" in excerpt.note


def test_a_text_body_of_a_call_that_carried_only_this_card_is_shown():
    excerpt = body_excerpt("Service unavailable for r0@example.com.", CallCards(cards=(card(0),), this=0))

    assert excerpt.text == "Service unavailable for r0@example.com." and not excerpt.note


def test_a_list_row_keeps_its_own_email_and_loses_every_other():
    text = "Refused: 'jonas@example' is not valid (basket of mette@example.com)."

    assert other_emails_replaced(text, own_email="Mette@Example.com") == (
        f"Refused: '{ANOTHER_RECIPIENT}' is not valid (basket of mette@example.com).")
    assert other_emails_replaced(text, own_email="jonas@example") == (
        f"Refused: 'jonas@example' is not valid (basket of {ANOTHER_RECIPIENT}).")

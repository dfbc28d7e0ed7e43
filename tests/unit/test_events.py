from __future__ import annotations

import orjson
import pytest

from shared.accounting.events import (
    BALANCE_SIGN,
    EVENT_TYPES,
    USAGE_SIGN,
    Batch,
    ChargeRef,
    Event,
    MalformedMessage,
    decode_batch,
    signed_amount,
)

EVENT = Event(
    id="e1",
    type="debit",
    account="a",
    amount=2,
    epoch=1,
    seq=1,
    reason="meme:ai",
    request_id="r1",
    at="2026-11-28T10:00:00.000Z",
)


def test_a_batch_survives_the_round_trip() -> None:
    batch = Batch(3, [EVENT])
    assert decode_batch(batch.encode()) == batch
    assert batch.group_id == "s3"


def test_the_deduplication_id_depends_only_on_the_events() -> None:
    other = Event(**{**EVENT.to_dict(), "id": "e2"})
    assert Batch(1, [EVENT]).deduplication_id == Batch(1, [EVENT]).deduplication_id
    assert Batch(1, [EVENT]).deduplication_id != Batch(1, [other]).deduplication_id
    assert len(Batch(1, [EVENT] * 100).deduplication_id) <= 128


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        orjson.dumps({"v": 2, "shard": 1, "events": [EVENT.to_dict()]}),
        orjson.dumps({"v": 1, "shard": -1, "events": [EVENT.to_dict()]}),
        orjson.dumps({"v": 1, "shard": 1, "events": []}),
        orjson.dumps({"v": 1, "shard": 1, "events": [{**EVENT.to_dict(), "amount": 0}]}),
        orjson.dumps({"v": 1, "shard": 1, "events": [{**EVENT.to_dict(), "type": "steal"}]}),
        orjson.dumps({"v": 1, "shard": 1, "events": [{**EVENT.to_dict(), "seq": "1"}]}),
        orjson.dumps({"v": 1, "shard": 1, "events": [{**EVENT.to_dict(), "at": "yesterday"}]}),
        orjson.dumps({"v": 1, "shard": 1, "events": [{**EVENT.to_dict(), "account": ""}]}),
    ],
)
def test_anything_off_schema_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_batch(body)


def test_signed_amounts_and_kinds() -> None:
    assert EVENT.signed_amount == -2
    assert EVENT.kind == "ai"
    refund = Event(**{**EVENT.to_dict(), "type": "refund"})
    assert refund.signed_amount == 2


def test_every_type_has_one_effect_on_the_balance_and_on_usage() -> None:
    assert set(BALANCE_SIGN) == set(USAGE_SIGN) == set(EVENT_TYPES)
    credit = Event(**{**EVENT.to_dict(), "type": "credit"})
    refund = Event(**{**EVENT.to_dict(), "type": "refund"})
    assert (EVENT.usage_sign, refund.usage_sign, credit.usage_sign) == (1, -1, 0)
    assert (signed_amount("debit", 3), signed_amount("credit", 3)) == (-3, 3)


def test_a_refund_names_its_charge_and_survives_the_round_trip() -> None:
    refund = Event(**{**EVENT.to_dict(), "type": "refund", "charge": "3:17:c-1"})
    assert decode_batch(Batch(0, [refund]).encode()).events == [refund]
    assert refund.charge_ref == ChargeRef(3, 17, "c-1")
    assert str(ChargeRef(3, 17, "c-1")) == "3:17:c-1"
    assert EVENT.charge_ref is None


@pytest.mark.parametrize(
    ("kind", "charge"),
    [("refund", "3:17"), ("refund", "x:1:c"), ("refund", "3:17:"), ("debit", "3:17:c-1")],
)
def test_a_charge_only_a_refund_may_name_and_only_in_its_form(kind: str, charge: str) -> None:
    raw = {**EVENT.to_dict(), "type": kind, "charge": charge}
    with pytest.raises(MalformedMessage, match="charge"):
        decode_batch(orjson.dumps({"v": 1, "shard": 0, "events": [raw]}))


def test_a_refund_from_before_charges_were_named_still_decodes() -> None:
    raw = {**EVENT.to_dict(), "type": "refund"}
    del raw["charge"]
    (refund,) = decode_batch(orjson.dumps({"v": 1, "shard": 0, "events": [raw]})).events
    assert refund.charge_ref is None


def test_only_a_close_travels_without_an_amount() -> None:
    """A close is written before its amount is known: the ledger gives it one."""
    close = Event(**{**EVENT.to_dict(), "type": "close", "amount": 0})
    assert decode_batch(Batch(0, [close]).encode()).events == [close]
    debit = {**EVENT.to_dict(), "amount": 0}
    with pytest.raises(MalformedMessage, match="amount"):
        decode_batch(orjson.dumps({"v": 1, "shard": 0, "events": [debit]}))

from __future__ import annotations

import pytest

from api.idempotency import parse_idempotency_key, request_fingerprint, task_id_for_key
from api.problems import ProblemError


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"with space and \\"quote\\""', 'with space and "quote"'),
        ("order-42", "order-42"),
        ("  padded  ", "padded"),
    ],
)
def test_well_formed_keys(raw: str, key: str) -> None:
    assert parse_idempotency_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    ['""', '"unterminated', "two words", '"tab\there"', "caf\u00e9", '"' + "x" * 256 + '"', ""],
)
def test_malformed_keys_are_400(raw: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_idempotency_key(raw)
    assert caught.value.status == 400


def test_task_id_is_stable_per_tenant_and_key() -> None:
    assert task_id_for_key("t", "k") == task_id_for_key("t", "k")
    assert task_id_for_key("t", "k") != task_id_for_key("u", "k")
    assert task_id_for_key("t", "k") != task_id_for_key("t", "k2")


def test_fingerprint_ignores_key_order_only() -> None:
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})

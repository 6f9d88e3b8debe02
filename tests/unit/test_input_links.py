"""One-time input links: signed like stream tokens with a key of their own, expiring,
and refused when changed by a byte or made for another purpose."""

from __future__ import annotations

import pytest

from api.input_links import InputLinks, InvalidInputLinkError
from api.stream_tokens import StreamTokens

SECRET = b"a-secret-of-at-least-32-bytes!!!"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def links(clock: Clock | None = None, ttl: float = 3600) -> InputLinks:
    tokens = StreamTokens(SECRET, ttl_seconds=60)
    return InputLinks(tokens.derived_secret("input-link"), ttl_seconds=ttl, clock=clock or Clock())


def test_a_link_names_the_task_tenant_and_input_until_it_expires() -> None:
    clock = Clock()
    signer = links(clock)
    token, grant = signer.mint("task-1", "acme", "approve")
    checked = signer.verify(token)
    assert checked == grant
    assert (checked.task_id, checked.tenant, checked.name) == ("task-1", "acme", "approve")
    assert checked.expires_at.timestamp() == clock.now + 3600
    clock.now += 3600
    with pytest.raises(InvalidInputLinkError) as expired:
        signer.verify(token)
    assert expired.value.expired


def test_every_link_is_its_own_and_asking_longer_than_allowed_is_capped() -> None:
    signer = links(ttl=100)
    first, one = signer.mint("t", "acme", "approve", ttl_seconds=10_000)
    second, two = signer.mint("t", "acme", "approve")
    assert first != second
    assert one.link_id != two.link_id
    assert one.expires_at == two.expires_at  # both at the 100 s cap


@pytest.mark.parametrize("change", ["body", "signature", "truncated", "garbage"])
def test_a_changed_link_is_refused(change: str) -> None:
    signer = links()
    token, _ = signer.mint("task-1", "acme", "approve")
    body, _, signature = token.partition(".")
    changed = {
        "body": ("A" if body[0] != "A" else "B") + body[1:] + "." + signature,
        "signature": body + "." + signature[::-1],
        "truncated": body,
        "garbage": "not a token",
    }[change]
    with pytest.raises(InvalidInputLinkError) as refused:
        signer.verify(changed)
    assert not refused.value.expired


def test_a_stream_token_is_no_input_link_and_another_secret_signs_no_link() -> None:
    tokens = StreamTokens(SECRET, ttl_seconds=60)
    stream_token, _ = tokens.mint("task-1", "acme")
    with pytest.raises(InvalidInputLinkError):
        links().verify(stream_token)
    other = InputLinks(
        StreamTokens(b"another-secret-of-32-bytes-long!", ttl_seconds=60).derived_secret(
            "input-link"
        ),
        ttl_seconds=60,
    )
    token, _ = other.mint("task-1", "acme", "approve")
    with pytest.raises(InvalidInputLinkError):
        links().verify(token)

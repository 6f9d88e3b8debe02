"""Webhook pieces that need no server: the address policy, signatures, back-off, secrets,
and the decision after a failed attempt."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from api.models import WebhookSpec
from webhooks.api import generate_secret
from webhooks.outbound import (
    DestinationRefusedError,
    check_destination,
    is_public_address,
    pinned,
    signed_headers,
)
from webhooks.policy import AfterFailure, DeliveryPolicy, after_failure, retry_delay
from webhooks.store import ClaimedDelivery


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),  # documentation
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_only_public_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_literal_addresses_are_checked_without_resolving() -> None:
    assert await check_destination("https://8.8.8.8/hook", allow_private=False) == [
        ipaddress.ip_address("8.8.8.8")
    ]
    with pytest.raises(DestinationRefusedError, match="non-public"):
        await check_destination("http://[fd00::1]:8080/hook", allow_private=False)


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/x", "file:///etc/passwd", "gopher://8.8.8.8/"])
async def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(DestinationRefusedError, match="http or https"):
        await check_destination(url, allow_private=True)


async def test_allowing_private_networks_skips_resolution() -> None:
    assert await check_destination("http://no-such-host.invalid/x", allow_private=True) == []
    with pytest.raises(DestinationRefusedError, match="does not resolve"):
        await check_destination("http://no-such-host.invalid/x", allow_private=False)


def delivery(secret: str, body: str) -> ClaimedDelivery:
    now = datetime.now(UTC)
    return ClaimedDelivery(
        id=1,
        task_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="task.created.v1",
        sequence=1,
        attempt=1,
        created_at=now,
        recorded_at=now,
        url="http://8.8.8.8/hook",
        secret=secret,
        body=body,
    )


def test_signed_headers_verify_with_standardwebhooks() -> None:
    secret = generate_secret()
    body = json.dumps({"id": "e1", "sequence": 1})
    claimed = delivery(secret, body)
    headers = signed_headers(claimed, datetime.now(UTC))
    assert headers["webhook-id"] == claimed.event_id
    assert Webhook(secret).verify(body, headers) == {"id": "e1", "sequence": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("1}", "2}"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_generated_secrets_are_32_random_bytes_the_api_accepts() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != generate_secret()
    WebhookSpec.model_validate({"url": "https://example.com/hook", "secret": secret})


def test_retry_delays_grow_by_four_up_to_the_cap_with_jitter() -> None:
    assert [retry_delay(n, base=5, cap=3600, jitter=1.0) for n in (1, 2, 3)] == [5, 20, 80]
    assert retry_delay(10, base=5, cap=3600, jitter=1.0) == 3600
    rng = random.Random(7)
    delays = [retry_delay(2, base=5, cap=3600, jitter=rng.random()) for _ in range(200)]
    assert 10 <= min(delays) < 11
    assert 19 < max(delays) <= 20


def test_pinning_aims_at_the_checked_address_and_keeps_the_name() -> None:
    url, headers, extensions = pinned(
        httpx.URL("https://hooks.example.com/in?x=1"), ipaddress.ip_address("2606:4700::1111")
    )
    assert str(url) == "https://[2606:4700::1111]/in?x=1"
    assert headers == {"host": "hooks.example.com"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    url, headers, extensions = pinned(
        httpx.URL("http://hooks.example.com:8080/in"), ipaddress.ip_address("93.184.215.14")
    )
    assert (str(url), headers, extensions) == (
        "http://93.184.215.14:8080/in",
        {"host": "hooks.example.com:8080"},
        {},
    )


POLICY = DeliveryPolicy(
    timeout_seconds=10,
    max_attempts=4,
    max_age_seconds=100,
    retry_base_seconds=5,
    retry_max_seconds=3600,
    lease_seconds=60,
    poll_seconds=1,
    batch_size=8,
    allow_private_networks=False,
    disable_on_gone=True,
)


def test_a_failed_attempt_is_retried_until_the_attempts_or_the_age_run_out() -> None:
    def step(attempt: int, age: float, status: int | None = 500) -> AfterFailure:
        return after_failure(POLICY, attempt=attempt, status_code=status, age_seconds=age, jitter=1)

    assert step(1, 0) == AfterFailure("retry", 5)
    assert step(2, 0, None) == AfterFailure("retry", 20)  # no answer at all: the same
    assert step(3, 0) == AfterFailure("retry", 80)
    assert step(4, 0) == AfterFailure("give_up")  # the 4th of 4 attempts
    assert step(3, 20.5) == AfterFailure("give_up")  # 20.5 + 80 s would pass the 100 s
    assert step(3, 20) == AfterFailure("retry", 80)  # exactly at the limit still goes


def test_410_disables_the_endpoint_unless_told_otherwise() -> None:
    def gone(policy: DeliveryPolicy) -> AfterFailure:
        return after_failure(policy, attempt=1, status_code=410, age_seconds=0, jitter=0)

    assert gone(POLICY) == AfterFailure("disable")
    assert gone(replace(POLICY, disable_on_gone=False)) == AfterFailure("retry", 2.5)


def test_a_lease_must_outlast_the_request_timeout() -> None:
    with pytest.raises(ValueError, match="lease"):
        replace(POLICY, lease_seconds=POLICY.timeout_seconds)

"""Concurrency keys without servers: policies, tenant weights, what `POST /tasks` puts in
the workflow's input, Temporal's Priority on start, and the Idempotency-Key fingerprint
staying what it was for bodies without the new fields (docs/flow-control.md)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.admission import workflow_input
from api.models import CreateTaskRequest
from schemas.admission import ConcurrencyPolicy, concurrency_policy, register_concurrency
from schemas.workflow import TaskWorkflowInput
from settings import Settings
from settings.admission import parse_tenant_weights
from temporal.tasks import start_priority


def test_tenant_weights_parse_and_refuse_what_is_not_tenant_equals_weight() -> None:
    assert parse_tenant_weights("acme=5, beta=3,") == {"acme": 5.0, "beta": 3.0}
    assert parse_tenant_weights("") == {}
    for bad in ("acme", "acme=0", "acme=-1", "=3", "acme=x"):
        with pytest.raises(ValueError, match=r"tenant=weight|above 0"):
            parse_tenant_weights(bad)
    with pytest.raises(ValidationError):
        Settings(tenant_weights="acme")
    assert Settings(concurrency_limit="").concurrency_limit is None


def test_a_policy_is_the_types_own_else_the_default_else_none() -> None:
    register_concurrency("test.limited", ConcurrencyPolicy(2, "cancel_newest"))
    assert concurrency_policy("test.limited", 7) == ConcurrencyPolicy(2, "cancel_newest")
    assert concurrency_policy("test.other", 7) == ConcurrencyPolicy(7, "queue")
    assert concurrency_policy("test.other", None) is None
    with pytest.raises(ValueError, match="already declares"):
        register_concurrency("test.limited", ConcurrencyPolicy(3))
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyPolicy(0)
    with pytest.raises(ValueError, match="strategy"):
        ConcurrencyPolicy(1, "drop")  # type: ignore[arg-type]


def test_the_workflow_input_carries_the_decision() -> None:
    body = CreateTaskRequest(type="demo.pipeline", priority=1)
    unlimited = workflow_input(body, "t1", {}, "acme", Settings())
    assert (unlimited.concurrency_key, unlimited.concurrency_limit) == (None, None)
    assert unlimited.priority == 1
    limited = workflow_input(body, "t1", {}, "acme", Settings(concurrency_limit=4))
    assert (limited.concurrency_key, limited.concurrency_limit) == ("acme", 4)
    keyed = CreateTaskRequest(type="demo.pipeline", concurrency_key="gpu")
    assert (
        workflow_input(keyed, "t1", {}, "acme", Settings(concurrency_limit=4)).concurrency_key
        == "gpu"
    )


def test_priority_and_key_are_validated() -> None:
    for bad in ({"priority": 0}, {"priority": 6}, {"concurrency_key": ""}):
        with pytest.raises(ValidationError):
            CreateTaskRequest(type="demo.pipeline", **bad)


def test_old_workflow_inputs_still_decode() -> None:
    old = TaskWorkflowInput.model_validate(
        {"task_id": "t", "task_type": "demo.pipeline", "input": {}, "owner": "acme"}
    )
    assert (old.concurrency_limit, old.priority, old.concurrency_strategy) == (None, 3, "queue")


def test_every_start_carries_the_tenant_as_fairness_key_with_its_weight() -> None:
    request = TaskWorkflowInput(task_id="t", task_type="x", input={}, owner="acme", priority=2)
    priority = start_priority(request, {"acme": 5.0})
    assert (priority.priority_key, priority.fairness_key, priority.fairness_weight) == (
        2,
        "acme",
        5.0,
    )
    assert start_priority(request, {}).fairness_weight == 1.0


def test_the_fingerprint_of_a_body_without_the_new_fields_is_unchanged() -> None:
    plain = CreateTaskRequest(type="demo.pipeline", input={"steps": 2})
    assert plain.fingerprint_fields() == {
        "type": "demo.pipeline",
        "input": {"steps": 2},
        "webhook": None,
    }
    keyed = CreateTaskRequest(type="demo.pipeline", concurrency_key="k", priority=1)
    assert keyed.fingerprint_fields()["concurrency_key"] == "k"
    assert keyed.fingerprint_fields()["priority"] == 1

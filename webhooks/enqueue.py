"""Turning events into webhook deliveries: inside the statement that records the event.

`EventStore.append` (store/events.py) is one SQL statement; `DELIVERY_CTE` is spliced
into it after the `event` CTE (the row just inserted, or nothing for a duplicate). It
inserts the event's delivery row when the task has an enabled endpoint that wants the
event's type, and asks Postgres to NOTIFY `NOTIFY_CHANNEL` at commit, which wakes every
worker's dispatcher. So a delivery exists exactly when its event does — committed in
the same transaction — and nothing between recording and sending (no broker, no
consumer group, no stream trim) can lose or delay it.

Why the rules of webhooks/store.py hold without further work:

* one delivery per event per endpoint: a duplicate recording inserts no event, so no
  delivery (and `UNIQUE (task_id, event_id)` stays as the backstop);
* per-task order: the recording statement holds the task row's lock until commit, so
  a task's delivery rows commit in `sequence` order, and a later one can never be
  claimed while an earlier one is not yet visible;
* the endpoint exists before the task's first event: the API stores it before it
  starts the workflow (webhooks/api.py).

For a task without a webhook the cost is one primary-key probe of `webhook_endpoints`
(docs/performance.md has the measurement). The fragment uses the statement's own
`%(event_type)s` parameter; it defines CTEs `delivery` and `wake`, and the statement's
final `RETURNING` must read `wake` (`WAKE_COLUMN`): Postgres runs a data-modifying CTE
whether or not anything reads it, but a plain `SELECT` CTE (the `pg_notify` call) only
when something does.
"""

from __future__ import annotations

NOTIFY_CHANNEL = "taskplane_webhooks"

DELIVERY_CTE = f""", delivery AS (
    INSERT INTO webhook_deliveries (task_id, event_id, event_type, seq)
    SELECT event.task_id, event.event_id, %(event_type)s, event.seq
    FROM event JOIN webhook_endpoints w ON w.task_id = event.task_id
    WHERE w.disabled_at IS NULL
      AND (w.event_types IS NULL OR %(event_type)s::text = ANY (w.event_types))
    ON CONFLICT (task_id, event_id) DO NOTHING
    RETURNING task_id
), wake AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM delivery
)"""

# Read by the final RETURNING so that `wake` runs (NULL: no delivery, nothing to wake).
WAKE_COLUMN = "(SELECT count(*) FROM wake)"

-- Webhooks: one endpoint per task (written by the API at creation, before the
-- workflow starts), and one delivery per event the endpoint wants (written by the
-- worker's durable `webhooks` handler, sent by its delivery loop).

CREATE TABLE webhook_endpoints (
    -- No foreign key to tasks: the subscription is stored before the task's first event.
    task_id          text PRIMARY KEY,
    url              text NOT NULL,
    -- `whsec_…`; kept here (not in Temporal history, which operators can read).
    secret           text NOT NULL,
    secret_generated boolean NOT NULL,
    -- NULL: every event type.
    event_types      text[],
    -- The creating request's fingerprint: an Idempotency-Key repeat must match it.
    request_hash     text NOT NULL,
    -- Every event of the task up to this sequence has its delivery row (or is filtered out).
    enqueued_through bigint NOT NULL DEFAULT 0,
    disabled_at      timestamptz,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    task_id          text NOT NULL REFERENCES webhook_endpoints (task_id),
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    seq              bigint NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts started; also the fencing token of the current lease.
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    finished_at      timestamptz,
    UNIQUE (task_id, event_id),
    UNIQUE (task_id, seq)
);

CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at, id) WHERE status = 'pending';

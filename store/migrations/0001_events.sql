-- The event store, its outbox, the task read model and the processed-event table.

CREATE TABLE tasks (
    task_id     text PRIMARY KEY,
    task_type   text,
    status      text NOT NULL DEFAULT 'pending',
    progress    double precision NOT NULL DEFAULT 0,
    input       jsonb,
    owner       text,
    result      jsonb,
    error       text,
    -- The highest sequence committed for this task; taken under this row's lock.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasks_newest_idx ON tasks (created_at DESC, task_id DESC);
CREATE INDEX tasks_status_newest_idx ON tasks (status, created_at DESC, task_id DESC);

CREATE TABLE events (
    task_id     text NOT NULL REFERENCES tasks (task_id),
    seq         bigint NOT NULL,
    event_id    text NOT NULL UNIQUE,
    event_type  text NOT NULL,
    recorded_at timestamptz NOT NULL,
    -- The CloudEvents JSON exactly as served, `sequence` included.
    envelope    text NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE REFERENCES events (event_id),
    task_id      text NOT NULL,
    seq          bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);

CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- Durable handlers remember what they already did, so redelivery has one effect.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Admission (issue 24): concurrency keys. A task type with a concurrency limit takes a
-- slot of its key before its first step (store/admission.py, docs/flow-control.md).
--
-- `admission_keys` is one row per (task type, concurrency key): its limit (the latest
-- a task of the key brought) and how many of its tasks hold a slot. Every claim and
-- release locks this row first, so `running` and the tickets it counts change in one
-- serialised transaction: two workers can never both take the last slot.
CREATE TABLE admission_keys (
    task_type       text NOT NULL,
    concurrency_key text NOT NULL,
    max_running     integer NOT NULL CHECK (max_running >= 1),
    running         integer NOT NULL DEFAULT 0 CHECK (running >= 0),
    -- Start-time fair queueing across tenants: the virtual time of the last grant.
    vtime           double precision NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_type, concurrency_key)
);

-- One ticket per task that asked for a slot: `queued` (waiting, in `priority`, then
-- `seq` order per tenant) or `running` (holds a slot). A ticket goes when its task
-- ends: by the workflow, or by the reconciler for a run that closed without it
-- (terminate, timeout, a reset that left its run).
CREATE TABLE admission_tickets (
    task_id         text PRIMARY KEY,
    task_type       text NOT NULL,
    concurrency_key text NOT NULL,
    tenant          text NOT NULL,
    priority        smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),
    seq             bigserial NOT NULL,
    state           text NOT NULL CHECK (state IN ('queued', 'running')),
    -- cancel_in_progress asked this task to stop: it is not asked twice.
    preempted       boolean NOT NULL DEFAULT false,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    admitted_at     timestamptz,
    -- The admitted task's workflow was signalled (a lost signal is sent again).
    woken           boolean NOT NULL DEFAULT false,
    FOREIGN KEY (task_type, concurrency_key) REFERENCES admission_keys
);

-- The head of each tenant's queue of a key (the dispatcher's question).
CREATE INDEX admission_tickets_queue_idx
    ON admission_tickets (task_type, concurrency_key, state, tenant, priority, seq);
-- Admitted tasks whose wake-up signal is not confirmed yet.
CREATE INDEX admission_tickets_unwoken_idx
    ON admission_tickets (admitted_at) WHERE state = 'running' AND NOT woken;

-- Weighted round robin across the tenants waiting on a key (start-time fair queueing):
-- each grant advances its tenant's virtual finish by 1 / weight (TASKPLANE_TENANT_WEIGHTS);
-- the waiting tenant whose next grant would start first goes next.
CREATE TABLE admission_served (
    task_type       text NOT NULL,
    concurrency_key text NOT NULL,
    tenant          text NOT NULL,
    vfinish         double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (task_type, concurrency_key, tenant),
    FOREIGN KEY (task_type, concurrency_key) REFERENCES admission_keys ON DELETE CASCADE
);

-- Bulk operations (`POST /tasks/bulk`): one row per operation, and one row per task it
-- matched, with what became of that task. The counts `GET /bulk/{id}` shows are read
-- from the task rows, so they are exact whatever crashed in between: a task's outcome
-- is written once (`outcome IS NULL` guards it) and counted once.

CREATE TABLE bulk_operations (
    id           text PRIMARY KEY,
    tenant       text NOT NULL,
    action       text NOT NULL,
    filter       jsonb NOT NULL,
    -- The request body's hash: a repeat with the same Idempotency-Key and another body
    -- is refused.
    request_hash text NOT NULL,
    -- pending → selecting → running → completed
    status       text NOT NULL DEFAULT 'pending',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE INDEX bulk_operations_tenant_idx ON bulk_operations (tenant, created_at DESC);

-- No foreign key to tasks: retention may prune a task an operation once acted on.
CREATE TABLE bulk_operation_tasks (
    bulk_id  text NOT NULL REFERENCES bulk_operations (id) ON DELETE CASCADE,
    task_id  text NOT NULL,
    -- NULL until acted on; then done | skipped | failed.
    outcome  text,
    reason   text,
    acted_at timestamptz,
    PRIMARY KEY (bulk_id, task_id)
);

-- The pages of tasks still to act on, in task id order.
CREATE INDEX bulk_operation_tasks_pending_idx ON bulk_operation_tasks (bulk_id, task_id)
    WHERE outcome IS NULL;

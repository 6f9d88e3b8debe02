-- Debounce keeps Idempotency-Key semantics: a debounced creation's task is the window's,
-- not the one the key would name, so the key's answer is stored here (written by the
-- API once the window answered). A repeat with the same body gets this task (200); with
-- another body, 422.

CREATE TABLE debounced_requests (
    tenant          text NOT NULL,
    idempotency_key text NOT NULL,
    task_id         text NOT NULL,
    request_hash    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, idempotency_key)
);

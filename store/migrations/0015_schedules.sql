-- Schedules (issue 24, docs/schedules.md): a tenant's schedules, each one Temporal
-- Schedule. Temporal runs them; this table says which tenant owns which (a list is
-- read here, consistent at once, never from Temporal's eventually consistent
-- visibility) and holds the request as last written (create, then PATCH), so a repeat
-- of a creation with the same `id` is recognised (`request_hash`).
CREATE TABLE schedules (
    tenant       text NOT NULL,
    schedule_id  text NOT NULL,
    -- The Temporal Schedule's id (derived from tenant and id: temporal/schedules.py).
    temporal_id  text NOT NULL UNIQUE,
    request      jsonb NOT NULL,
    request_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, schedule_id)
);

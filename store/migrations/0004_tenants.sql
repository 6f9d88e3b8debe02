-- Tenants: which tenant created each task. Written by the API when it accepts
-- `POST /tasks`, BEFORE the workflow starts, so even a task Temporal knows and the
-- store does not yet (pending) is checked against its owner.

CREATE TABLE task_owners (
    -- No foreign key to tasks: ownership is stored before the task's first event.
    task_id    text PRIMARY KEY,
    tenant     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant's list of tasks joins through this index.
CREATE INDEX task_owners_tenant_idx ON task_owners (tenant, task_id);

-- Tasks recorded before tenants existed belong to the tenant `default` (the open
-- API's tenant), so they stay where an upgrade found them.
INSERT INTO task_owners (task_id, tenant, created_at)
SELECT task_id, 'default', created_at FROM tasks
ON CONFLICT (task_id) DO NOTHING;

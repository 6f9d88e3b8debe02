-- Waiting for input (issue 18).

-- The few events that say what a task waits for, found without reading all its events
-- (a task may have thousands of progress or output events): `store/inputs.py` folds
-- them into the inputs the task waits for now (`task.reset.v1` starts over).
CREATE INDEX events_inputs_idx ON events (task_id, seq)
    WHERE event_type IN ('task.input.requested.v1', 'task.input.received.v1', 'task.reset.v1');

-- One-time input links (api/input_links.py): a link's id is written when it delivers, so
-- it delivers once. Kept until the link has expired (a used link is refused anyway), and
-- removed with its task (retention).
CREATE TABLE input_link_uses (
    link_id    text PRIMARY KEY,
    task_id    text NOT NULL,
    name       text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX input_link_uses_task_idx ON input_link_uses (task_id);

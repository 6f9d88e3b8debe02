-- Retention (issue 17): closed tasks are pruned after TASKPLANE_RETENTION_CLOSED_TASKS_SECONDS
-- (store/retention.py), and the ids of the tasks the API accepted that never started are
-- cleaned up (orphans).

-- A tombstone per pruned task. While it is here the task answers 404 (even though its
-- Temporal workflow may still be retained) and the store refuses any event of it, so a
-- late event cannot bring back half a task. Expired after
-- TASKPLANE_RETENTION_TOMBSTONES_SECONDS.
CREATE TABLE pruned_tasks (
    task_id   text PRIMARY KEY,
    pruned_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX pruned_tasks_pruned_at_idx ON pruned_tasks (pruned_at);

-- Tasks the API accepted (owner row, maybe a webhook) whose first event is not recorded
-- yet: written with the owner row, removed by the first event (the trigger below). Kept
-- small on purpose: the orphan sweep reads this table, never all of task_owners. A row
-- older than the grace period whose workflow Temporal does not know is an orphan (the
-- start failed after the owner row was written). `claimed_at` moves on every claim of
-- the id (an Idempotency-Key repeat), so a sweep never removes an id being started now.
CREATE TABLE unstarted_tasks (
    task_id    text PRIMARY KEY,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX unstarted_tasks_claimed_idx ON unstarted_tasks (claimed_at, task_id);

-- What an older version left behind: owner or webhook rows of tasks with no event.
INSERT INTO unstarted_tasks (task_id, claimed_at)
SELECT o.task_id, o.created_at FROM task_owners o
WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = o.task_id)
UNION ALL
SELECT w.task_id, w.created_at FROM webhook_endpoints w
WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = w.task_id)
  AND NOT EXISTS (SELECT 1 FROM task_owners o WHERE o.task_id = w.task_id)
ON CONFLICT (task_id) DO NOTHING;

-- Runs once per task, when its row is made (its first event; the events that follow
-- update the row and never fire it). AFTER the insert, in a VOLATILE function: its query
-- takes a fresh snapshot, so it sees a tombstone committed while the recording statement
-- waited on the row lock of the task being pruned (the row was deleted, the statement's
-- insert went ahead): the insert is refused instead of bringing the task back.
CREATE FUNCTION taskplane_task_row_made() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pruned_tasks WHERE task_id = NEW.task_id) THEN
        RAISE EXCEPTION 'task % was pruned', NEW.task_id USING ERRCODE = 'TP410';
    END IF;
    DELETE FROM unstarted_tasks WHERE task_id = NEW.task_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_row_made AFTER INSERT ON tasks
FOR EACH ROW EXECUTE FUNCTION taskplane_task_row_made();

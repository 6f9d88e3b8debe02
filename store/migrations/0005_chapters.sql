-- Chapters (issue 14): a Temporal reset starts a new run of the same task. The task row
-- remembers the run whose events it takes now (`run_id`) and every run it took events from
-- (`runs`), so an event from a new run begins a chapter and one from an old run is refused.
-- NULL for tasks recorded before this migration: their next run is adopted as it comes.
ALTER TABLE tasks ADD COLUMN run_id text;
ALTER TABLE tasks ADD COLUMN runs text[] NOT NULL DEFAULT '{}';
-- Set by the reconciler when Temporal shows the task's workflow task failing again and
-- again (the task cannot move); cleared by the task's next event.
ALTER TABLE tasks ADD COLUMN workflow_task_failing_since timestamptz;

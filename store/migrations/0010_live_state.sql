-- Live state written by task code (issue 18, docs/task-types.md): the task's merged
-- metadata and, per output stream, how much each writer (a step attempt, or the
-- workflow) has written. Kept by a trigger on `events`, so they commit with the event
-- that changes them, under the task row's lock the recording statement holds.

ALTER TABLE tasks ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE task_outputs (
    task_id   text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    stream    text NOT NULL,
    -- The writer: step index and attempt; 0 and 0 for workflow code.
    step      integer NOT NULL,
    attempt   integer NOT NULL,
    -- Characters of text plus JSON items written, and in how many events.
    length    bigint NOT NULL DEFAULT 0,
    chunks    bigint NOT NULL DEFAULT 0,
    -- The attempt failed (`task.step.failed.v1`): its output is not the task's.
    discarded boolean NOT NULL DEFAULT false,
    PRIMARY KEY (task_id, stream, step, attempt)
);

-- Past this many bytes the merged metadata is refused (schemas/live_events.py holds the
-- same number): SQLSTATE TP413, which the recorder's caller turns into a typed error.
CREATE FUNCTION taskplane_live_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := (NEW.envelope::jsonb) -> 'data';
    merged jsonb;
BEGIN
    IF NEW.event_type = 'task.metadata.updated.v1' THEN
        SELECT COALESCE(jsonb_object_agg(key, value), '{}'::jsonb) INTO merged
        FROM jsonb_each(
            (SELECT metadata FROM tasks WHERE task_id = NEW.task_id) || (data -> 'patch'))
        WHERE value <> 'null'::jsonb;
        IF octet_length(merged::text) > 16384 THEN
            RAISE EXCEPTION 'task % metadata would be % bytes, more than 16384',
                NEW.task_id, octet_length(merged::text) USING ERRCODE = 'TP413';
        END IF;
        UPDATE tasks SET metadata = merged WHERE task_id = NEW.task_id;
    ELSIF NEW.event_type = 'task.output.v1' THEN
        INSERT INTO task_outputs AS o (task_id, stream, step, attempt, length, chunks)
        VALUES (
            NEW.task_id, data ->> 'stream',
            COALESCE((data ->> 'step')::int, 0), COALESCE((data ->> 'attempt')::int, 0),
            COALESCE(char_length(data ->> 'text'), 0)
                + CASE WHEN jsonb_typeof(data -> 'items') = 'array'
                       THEN jsonb_array_length(data -> 'items') ELSE 0 END,
            1)
        ON CONFLICT (task_id, stream, step, attempt) DO UPDATE
            SET length = o.length + EXCLUDED.length, chunks = o.chunks + 1;
    ELSIF NEW.event_type = 'task.step.failed.v1' THEN
        UPDATE task_outputs SET discarded = true
        WHERE task_id = NEW.task_id AND step = (data ->> 'index')::int
          AND attempt = (data ->> 'attempt')::int;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_live_state AFTER INSERT ON events FOR EACH ROW
WHEN (NEW.event_type IN ('task.metadata.updated.v1', 'task.output.v1', 'task.step.failed.v1'))
EXECUTE FUNCTION taskplane_live_state();

-- How many tickets wait on each key, by priority (issue 24): what parking and claims ask
-- of a key's line, kept up to date by a trigger on admission_tickets, so neither counts
-- the line's rows. Counting them made each park cost Postgres CPU in proportion to the
-- line: 0.4 ms a park at 200 waiting, 1.5 ms on average over 5,000 (docs/performance.md,
-- "Session 12"). Every change of a ticket's state happens under its key's row lock
-- (store/admission.py), so a key's counters are only ever written by its lock holder.
CREATE TABLE admission_line (
    task_type       text NOT NULL,
    concurrency_key text NOT NULL,
    priority        smallint NOT NULL,
    queued          int NOT NULL CHECK (queued >= 0),
    PRIMARY KEY (task_type, concurrency_key, priority)
);
INSERT INTO admission_line (task_type, concurrency_key, priority, queued)
SELECT task_type, concurrency_key, priority, count(*) FROM admission_tickets
WHERE state = 'queued' GROUP BY task_type, concurrency_key, priority;

CREATE FUNCTION taskplane_admission_line() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state = 'queued' THEN
        UPDATE admission_line SET queued = queued - 1
        WHERE task_type = OLD.task_type AND concurrency_key = OLD.concurrency_key
          AND priority = OLD.priority;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state = 'queued' THEN
        INSERT INTO admission_line AS l (task_type, concurrency_key, priority, queued)
        VALUES (NEW.task_type, NEW.concurrency_key, NEW.priority, 1)
        ON CONFLICT (task_type, concurrency_key, priority)
        DO UPDATE SET queued = l.queued + 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER admission_line_counts
AFTER INSERT OR DELETE OR UPDATE OF state, priority, task_type, concurrency_key
ON admission_tickets FOR EACH ROW EXECUTE FUNCTION taskplane_admission_line();

-- Parking a task in one round trip (store/admission_park.py): what `POST /tasks` did as
-- six statements of one transaction (lock the key's row, check the id is new, count the
-- key's line, write the ticket and the task's row), as one function called in
-- autocommit. Each statement of a VOLATILE function takes a fresh snapshot under READ
-- COMMITTED, as the statements of the transaction did: the line is read after the key's
-- row lock is held, so every ticket parked by an earlier holder is in it.
-- NULL: start the task as usual (a free slot and nobody waiting, or the id is known).
CREATE FUNCTION taskplane_park(
    p_task_id text,
    p_task_type text,
    p_key text,
    p_tenant text,
    p_priority smallint,
    p_limit int,
    p_parked jsonb,
    p_input jsonb
) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_running int;
    v_limit int;
    v_waiting bigint;
    v_ahead bigint;
    v_position int;
BEGIN
    INSERT INTO admission_keys (task_type, concurrency_key, max_running)
    VALUES (p_task_type, p_key, p_limit)
    ON CONFLICT (task_type, concurrency_key)
    DO UPDATE SET max_running = EXCLUDED.max_running, updated_at = now()
    RETURNING running, max_running INTO v_running, v_limit;
    IF EXISTS (SELECT 1 FROM admission_tickets WHERE task_id = p_task_id)
       OR EXISTS (SELECT 1 FROM tasks WHERE task_id = p_task_id) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(queued), 0), coalesce(sum(queued) FILTER (WHERE priority <= p_priority), 0)
    INTO v_waiting, v_ahead
    FROM admission_line
    WHERE task_type = p_task_type AND concurrency_key = p_key;
    IF v_running < v_limit AND v_waiting = 0 THEN
        RETURN NULL;
    END IF;
    v_position := v_ahead + 1;
    INSERT INTO admission_tickets
        (task_id, task_type, concurrency_key, tenant, priority, state, parked)
    VALUES (p_task_id, p_task_type, p_key, p_tenant, p_priority, 'queued',
            jsonb_set(p_parked, '{input,parked_position}', to_jsonb(v_position)));
    INSERT INTO tasks (task_id, task_type, status, input, owner)
    VALUES (p_task_id, p_task_type, 'queued', p_input, p_tenant)
    ON CONFLICT (task_id) DO NOTHING;
    RETURN v_position;
END
$$;

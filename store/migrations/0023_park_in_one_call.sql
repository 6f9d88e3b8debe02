-- Parking a task in one round trip (issue 24, store/admission_park.py): what `POST /tasks`
-- did as six statements of one transaction (lock the key's row, check the id is new,
-- count the key's line, write the ticket and the task's row), as one function called in
-- autocommit. Each statement of a VOLATILE function takes a fresh snapshot under READ
-- COMMITTED, as the statements of the transaction did: the line is counted after the
-- key's row lock is held, so every ticket parked by an earlier holder is in it.
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
    SELECT count(*), count(*) FILTER (WHERE priority <= p_priority)
    INTO v_waiting, v_ahead
    FROM admission_tickets
    WHERE task_type = p_task_type AND concurrency_key = p_key AND state = 'queued';
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

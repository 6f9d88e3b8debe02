-- One autocommit statement per event append (issue 15, store/events.py). The statement
-- bumps the task's `last_seq` only when the event id is not stored yet; if a concurrent
-- append of the same id committed while this one waited on the task row's lock, the
-- bump would leave a gap in the sequence, so the statement calls this function instead
-- and fails whole: nothing of it is written. The caller then finds the stored copy.
CREATE FUNCTION taskplane_append_raced(event_id text) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'event % was appended concurrently', event_id USING ERRCODE = 'TP409';
END
$$;

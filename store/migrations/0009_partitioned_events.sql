-- Partitioning (issue 17): `events` becomes a table partitioned by RANGE on the creation
-- time of the event's task (`task_created_at`, a copy of `tasks.created_at`), so that every
-- event of a task lives in one partition and retention drops a whole partition (a file
-- unlink) once none of its tasks is left, instead of deleting rows (store/partitions.py,
-- docs/operations.md#partitions). Every row is copied over in this transaction: nothing
-- is lost, and the counts are checked before the old table goes.
--
-- A unique constraint of a partitioned table must hold the partition key, so the primary
-- key is (task_id, seq, task_created_at) and the event-id dedupe is
-- UNIQUE (event_id, task_created_at): every event of a task carries the same
-- `task_created_at` (the task row's, taken by the recording statement), so a repeat of
-- an event meets its first copy in the same partition and is refused as before.
--
-- The foreign keys into and out of `events` go: `outbox.event_id` can no longer reference
-- `events (event_id)` (not unique alone), and `events.task_id -> tasks` would forbid
-- pruning a task's row before its partition is dropped. The recording statement writes
-- the task row, the event and its outbox row together, which is what they checked.

ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_event_id_fkey;
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned DROP CONSTRAINT IF EXISTS events_task_id_fkey;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_event_id_key RENAME TO events_unpartitioned_event_id_key;

CREATE TABLE events (
    task_id         text NOT NULL,
    seq             bigint NOT NULL,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- The CloudEvents JSON exactly as served, `sequence` included.
    envelope        text NOT NULL,
    -- The partition key: `tasks.created_at` of the event's task (never changes).
    task_created_at timestamptz NOT NULL,
    PRIMARY KEY (task_id, seq, task_created_at),
    UNIQUE (event_id, task_created_at)
) PARTITION BY RANGE (task_created_at);

-- Catches an event whose range has no partition (none made ahead in time, or a task
-- created at a time long gone): a recording never fails for want of a partition. Kept
-- near empty: making a partition moves the default's rows of its range into it.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Every partition but the default with its bounds, read from the catalog.
CREATE VIEW taskplane_event_partitions AS
SELECT c.relname::text AS name, b[1]::timestamptz AS lower_bound, b[2]::timestamptz AS upper_bound
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(
    pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)'
) AS b
WHERE i.inhparent = 'events'::regclass AND b IS NOT NULL;

-- Make the partition [lower, upper) and return its name: made as a table of its own,
-- given the default partition's rows of that range, then attached (ATTACH takes SHARE
-- UPDATE EXCLUSIVE on `events`, which recordings do not wait for; CREATE TABLE …
-- PARTITION OF would take ACCESS EXCLUSIVE). The default partition is locked first (the
-- ATTACH would lock it anyway, to check it holds nothing of the range), so no event can
-- land there in the range between the move and the check. The caller makes sure the
-- range overlaps no partition (store/partitions.py).
CREATE FUNCTION taskplane_make_event_partition(lower timestamptz, upper timestamptz)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    name text := 'events_' || to_char(lower AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS');
BEGIN
    LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE events)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default'
        ' WHERE task_created_at >= %L AND task_created_at < %L RETURNING *)'
        ' INSERT INTO %I SELECT * FROM moved', lower, upper, name);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lower, upper);
    RETURN name;
END
$$;

-- A partition of a day for every day some task was created (only those: an old task
-- still open makes one partition, not one per day since), and for the next 7 days. The
-- worker's maintenance goes on from there with TASKPLANE_PARTITION_* (its own width).
SELECT taskplane_make_event_partition(day, day + interval '1 day')
FROM (
    SELECT date_bin(interval '1 day', created_at, timestamptz '2000-01-01 00:00:00+00') AS day
    FROM tasks
    UNION
    SELECT date_bin(interval '1 day', now(), timestamptz '2000-01-01 00:00:00+00')
           + n * interval '1 day'
    FROM generate_series(0, 7) AS n
) AS days
ORDER BY day;

INSERT INTO events (task_id, seq, event_id, event_type, recorded_at, envelope, task_created_at)
SELECT e.task_id, e.seq, e.event_id, e.event_type, e.recorded_at, e.envelope, t.created_at
FROM events_unpartitioned e
JOIN tasks t ON t.task_id = e.task_id;

DO $$
DECLARE
    before bigint := (SELECT count(*) FROM events_unpartitioned);
    after bigint := (SELECT count(*) FROM events);
BEGIN
    IF before <> after THEN
        RAISE EXCEPTION 'partitioning events: % rows before, % after', before, after;
    END IF;
END
$$;

DROP TABLE events_unpartitioned;
ANALYZE events;

"""The statements of the admission store (store/admission.py), which says when each runs."""

from __future__ import annotations

# The common cases in one statement. A task with no ticket whose key has a free slot and
# nobody waiting takes the slot: the upsert locks the key's row and checks `running` on
# its latest version. A task whose ticket already holds a slot (a retried opening, or the
# run a release woke: it was granted before its run existed) is answered `admitted` again
# from its ticket alone, without the key's row lock, which the key's parks and releases
# hold in turn under a flood. Nothing is returned (and nothing changed) when the slot is
# not free, when someone waits, or when the task waits in line: then `acquire` goes the
# long way.
FAST_CLAIM = """
WITH mine AS (
    UPDATE admission_tickets SET woken = true
    WHERE task_id = %(task_id)s AND state = 'running'
    RETURNING task_type, concurrency_key
), k AS (
    INSERT INTO admission_keys AS a (task_type, concurrency_key, max_running, running)
    SELECT %(task_type)s, %(key)s, %(limit)s, 1
    WHERE NOT EXISTS (SELECT 1 FROM admission_tickets m WHERE m.task_id = %(task_id)s)
    ON CONFLICT (task_type, concurrency_key) DO UPDATE
    SET running = a.running + 1, max_running = EXCLUDED.max_running, updated_at = now()
    WHERE a.running < EXCLUDED.max_running
      AND NOT EXISTS (SELECT 1 FROM admission_tickets q
                      WHERE q.task_type = a.task_type AND q.concurrency_key = a.concurrency_key
                        AND q.state = 'queued')
    RETURNING running
), ticket AS (
    INSERT INTO admission_tickets
        (task_id, task_type, concurrency_key, tenant, priority, state, admitted_at, woken)
    SELECT %(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s, 'running', now(), true
    FROM k
)
SELECT running FROM k
UNION ALL
SELECT a.running FROM admission_keys a JOIN mine USING (task_type, concurrency_key)
"""
CLAIM_KEY = """
INSERT INTO admission_keys (task_type, concurrency_key, max_running)
VALUES (%(task_type)s, %(key)s, %(limit)s)
ON CONFLICT (task_type, concurrency_key)
DO UPDATE SET max_running = EXCLUDED.max_running, updated_at = now()
RETURNING running, max_running
"""
LOCK_KEY = """
SELECT running, max_running, vtime FROM admission_keys
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s FOR UPDATE
"""
TICKET = "SELECT task_type, concurrency_key, state FROM admission_tickets WHERE task_id = %s"
# The line's length from its counters (migration 0023), not by counting its rows.
QUEUED = """
SELECT coalesce(sum(queued), 0) FROM admission_line
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s
"""
ENQUEUE = """
INSERT INTO admission_tickets (task_id, task_type, concurrency_key, tenant, priority, state)
VALUES (%(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s, 'queued')
"""
POSITION = """
SELECT count(*) + 1 FROM admission_tickets a, admission_tickets me
WHERE me.task_id = %(task_id)s AND a.task_type = me.task_type
  AND a.concurrency_key = me.concurrency_key AND a.state = 'queued'
  AND (a.priority, a.seq) < (me.priority, me.seq)
"""
# The head of each waiting tenant's line, with where that tenant's last grant finished.
HEADS = """
SELECT DISTINCT ON (t.tenant) t.tenant, t.task_id, t.seq, coalesce(s.vfinish, 0)
FROM admission_tickets t
LEFT JOIN admission_served s USING (task_type, concurrency_key, tenant)
WHERE t.task_type = %(task_type)s AND t.concurrency_key = %(key)s AND t.state = 'queued'
ORDER BY t.tenant, t.priority, t.seq
"""
# One grant, one round trip: the ticket runs, its tenant's virtual finish, the key's counts.
ADMIT = """
WITH granted AS (
    UPDATE admission_tickets SET state = 'running', admitted_at = now()
    WHERE task_id = %(task_id)s
), served AS (
    INSERT INTO admission_served (task_type, concurrency_key, tenant, vfinish)
    VALUES (%(task_type)s, %(key)s, %(tenant)s, %(vfinish)s)
    ON CONFLICT (task_type, concurrency_key, tenant) DO UPDATE SET vfinish = EXCLUDED.vfinish
)
UPDATE admission_keys SET running = running + 1, vtime = greatest(vtime, %(vtime)s),
    updated_at = now()
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s
"""
# A release: the ticket's key, locked, with its counts as they are now.
LOCK_TICKET_KEY = """
SELECT k.task_type, k.concurrency_key, k.running, k.max_running, k.vtime
FROM admission_tickets t JOIN admission_keys k USING (task_type, concurrency_key)
WHERE t.task_id = %s FOR UPDATE OF k
"""
# Then the ticket gone and, if it held a slot, the slot back: the key's `running` after.
DROP_TICKET = """
WITH dropped AS (DELETE FROM admission_tickets WHERE task_id = %(task_id)s RETURNING state)
UPDATE admission_keys SET running = running - 1, updated_at = now()
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s
  AND EXISTS (SELECT 1 FROM dropped WHERE state = 'running')
RETURNING running
"""
# cancel_in_progress: every older waiter, and the oldest holders not asked already.
DROP_WAITERS = """
DELETE FROM admission_tickets
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'queued'
RETURNING task_id
"""
PREEMPT = """
UPDATE admission_tickets SET preempted = true WHERE task_id IN (
    SELECT task_id FROM admission_tickets
    WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'running'
      AND NOT preempted
    ORDER BY admitted_at, seq LIMIT %(n)s)
RETURNING task_id
"""
ACTIVE_HOLDERS = """
SELECT count(*) FROM admission_tickets
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'running'
  AND NOT preempted
"""
WOKEN = "UPDATE admission_tickets SET woken = true WHERE task_id = %s"

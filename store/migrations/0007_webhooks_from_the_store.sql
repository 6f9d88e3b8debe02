-- Webhook deliveries are made by the statement that records the event (issue 16), no
-- longer by the worker's durable `webhooks` handler reading the broker's stream. Events
-- recorded before this migration that the handler had not reached yet
-- (`enqueued_through` short of them) get their deliveries here, so none is lost in the
-- switch; the order rules hold, since these rows have lower sequences than any new one.
INSERT INTO webhook_deliveries (task_id, event_id, event_type, seq)
SELECT e.task_id, e.event_id, e.event_type, e.seq
FROM webhook_endpoints w
JOIN events e ON e.task_id = w.task_id AND e.seq > w.enqueued_through
WHERE w.disabled_at IS NULL
  AND (w.event_types IS NULL OR e.event_type = ANY (w.event_types))
ORDER BY e.task_id, e.seq
ON CONFLICT (task_id, event_id) DO NOTHING;

-- `enqueued_through` is no longer written. It stays (not dropped) so a worker of the
-- previous version still running during a rolling upgrade keeps working; its handler's
-- inserts meet the rows made here and by the recording statement and add nothing.
COMMENT ON COLUMN webhook_endpoints.enqueued_through IS
    'unused since 0006: deliveries are made by the recording statement';

-- Retention of flow control's rows (store/flow_retention.py): the pruner finds expired
-- debounced creations and finished bulk operations by these, a batch at a time.

CREATE INDEX debounced_requests_created_idx ON debounced_requests (created_at);

CREATE INDEX bulk_operations_finished_idx ON bulk_operations (finished_at)
    WHERE finished_at IS NOT NULL;

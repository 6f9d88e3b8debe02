-- A durable handler that finds a trim gap in the Redis stream (its consumer group was
-- behind the stream's cap) heals from the store: it reads the events published since
-- the gap's start, which needs this index (store/published.py).
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

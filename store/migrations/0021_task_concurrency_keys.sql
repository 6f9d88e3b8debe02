-- Every task's concurrency key (issue 24), written by the API with the task's owner row
-- when it accepts the task (store/tenants.py): the key given at creation, else the
-- tenant. Bulk operations filter on it (`filter.concurrency_key`), for tasks of any type
-- and status; rows claimed before this column existed keep NULL (their key is known
-- only from an admission ticket, as before).

ALTER TABLE task_owners ADD COLUMN concurrency_key text;

CREATE INDEX task_owners_key_idx ON task_owners (tenant, concurrency_key, task_id)
    WHERE concurrency_key IS NOT NULL;

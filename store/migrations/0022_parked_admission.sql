-- Parked tasks (issue 24, docs/flow-control.md "Parked tasks"): a task whose key is full
-- when `POST /tasks` creates it waits as a queued ticket whose workflow takes no worker
-- time: the API starts it with a long start delay, and whoever admits it wakes it with
-- Signal-With-Start. `parked` is what that start needs (the workflow's input and the
-- request's memo), so nothing depends on the API that parked it; NULL: not parked.
ALTER TABLE admission_tickets ADD COLUMN parked jsonb;

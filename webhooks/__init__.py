"""Webhooks, one vertical slice: a task's events POSTed, signed, to a URL of its creator's.

* `api`: the subscription at `POST /tasks` and `GET /tasks/{id}/webhook`;
* `enqueue`: the SQL the event store's recording statement runs to make each
  event's delivery row in the event's own transaction;
* `store`: endpoints and deliveries in Postgres (subscribe, claim, outcomes);
* `dispatcher`: the worker's sender loop; `policy`: when to retry and give up;
* `outbound`: where a request may go (SSRF and DNS rebinding), signing, the POST;
* `metrics`: the dispatcher's figures as metrics.

Nothing is imported here: the event store imports `webhooks.enqueue` (plain SQL)
without loading the API, HTTP client or dispatcher.
"""

"""`taskplane tasks bulk …`: pause, resume or cancel every task that matches a filter.

    taskplane tasks bulk cancel|pause|resume [--status S]... [--type T]
        [--created-before TIME] [--created-after TIME] [--concurrency-key K]
        [--idempotency-key KEY] [--wait]
    taskplane tasks bulk show ID [--wait]

The API runs the operation in the background (docs/bulk-operations.md); `--wait`
follows it to its end. Exit 0 when every matched task was acted on or skipped, 1 when
some failed, 2 for a filter the API refused (422), 4 for an unknown operation.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TextIO

from cli.api_client import TaskApi
from cli.exit_codes import EXIT_FAILED, EXIT_OK
from cli.values import UsageError, write_json

AddCommand = Callable[..., argparse.ArgumentParser]
POLL_SECONDS = 0.5


def _summary(operation: dict[str, Any]) -> str:
    return (
        f"bulk {operation['action']} {operation['id']}: {operation['status']},"
        f" matched {operation['matched']}, done {operation['done']},"
        f" skipped {operation['skipped']}, failed {operation['failed']}"
    )


def _filter(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {
        "status": args.status,
        "type": args.type,
        "created_before": args.created_before,
        "created_after": args.created_after,
        "concurrency_key": args.concurrency_key,
    }
    return {name: value for name, value in chosen.items() if value}


def cmd_bulk(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "show":
        if not args.bulk_id:
            raise UsageError("`bulk show` needs the operation's ID")
        operation = api.call("GET", f"/bulk/{args.bulk_id}")
    else:
        if args.bulk_id:
            raise UsageError(f"`bulk {args.action}` takes a filter, not an ID")
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
        body = {"action": args.action, "filter": _filter(args)}
        operation = api.call("POST", "/tasks/bulk", json=body, headers=headers)
    if args.wait:
        shown = ""
        while True:
            line = _summary(operation)
            if line != shown and not args.json:
                out.write(line + "\n")
                out.flush()
                shown = line
            if operation["status"] == "completed":
                break
            time.sleep(POLL_SECONDS)
            operation = api.call("GET", f"/bulk/{operation['id']}")
    elif not args.json:
        out.write(_summary(operation) + "\n")
    if args.json:
        write_json(out, operation)
    if not args.json:
        for reason, count in sorted(operation.get("reasons", {}).items()):
            out.write(f"  {count} {reason}\n")
    return EXIT_FAILED if operation["status"] == "completed" and operation["failed"] else EXIT_OK


def add_bulk_command(add: AddCommand) -> None:
    bulk = add("bulk", cmd_bulk, "pause, resume or cancel every task matching a filter")
    bulk.add_argument("action", choices=("cancel", "pause", "resume", "show"))
    bulk.add_argument("bulk_id", nargs="?", metavar="ID", help="the operation (show only)")
    bulk.add_argument(
        "--status", action="append", metavar="STATUS", help="tasks in this status (repeatable)"
    )
    bulk.add_argument("--type", help="tasks of this type")
    bulk.add_argument("--created-before", metavar="TIME", help="RFC 3339 with a time zone")
    bulk.add_argument("--created-after", metavar="TIME", help="RFC 3339 with a time zone")
    bulk.add_argument("--concurrency-key", metavar="KEY", help="tasks with this key")
    bulk.add_argument("--idempotency-key", metavar="KEY", help="repeat-safe request")
    bulk.add_argument("--wait", action="store_true", help="follow the operation to its end")

"""`taskplane tasks input` and `input-link`: answer a task that waits for an input.

    taskplane tasks input ID NAME VALUE [--idempotency-key KEY] [--json]
    taskplane tasks input-link ID NAME [--expires-in SECONDS] [--json]

VALUE is a JSON object (or `@file.json`) matching the input's schema, which the
task's `task.input.requested.v1` carries. Refused: 409 (exit 5) when the task does
not wait for NAME, 422 (exit 2) when the value does not match (docs/cli.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO

from cli.api_client import TaskApi
from cli.exit_codes import EXIT_OK
from cli.values import parse_json_object, write_json

AddCommand = Callable[..., argparse.ArgumentParser]


def cmd_input(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    value = parse_json_object(args.value, what="VALUE")
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    answer = api.call(
        "POST", f"/tasks/{args.task_id}/inputs/{args.name}", json=value, headers=headers
    )
    if args.json:
        write_json(out, answer)
    else:
        out.write(f"task {answer['task_id']}: input {answer['name']} delivered\n")
    return EXIT_OK


def cmd_input_link(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    body = {"expires_in_seconds": args.expires_in} if args.expires_in else None
    answer = api.call("POST", f"/tasks/{args.task_id}/inputs/{args.name}/link", json=body)
    if args.json:
        write_json(out, answer)
    else:
        out.write(f"{answer['url']}\n(one use, until {answer['expires_at']})\n")
    return EXIT_OK


def add_input_commands(add: AddCommand) -> None:
    given = add("input", cmd_input, "deliver an input the task waits for (wait_for_input)")
    given.add_argument("task_id", metavar="ID")
    given.add_argument("name", metavar="NAME", help="the input, e.g. approve")
    given.add_argument("value", metavar="VALUE", help="its value as a JSON object, or @file.json")
    given.add_argument("--idempotency-key", metavar="KEY", help="repeat-safe delivery")
    link = add("input-link", cmd_input_link, "a one-time link that delivers an input, no key")
    link.add_argument("task_id", metavar="ID")
    link.add_argument("name", metavar="NAME", help="the input, e.g. approve")
    link.add_argument("--expires-in", type=float, metavar="SECONDS", help="default: the server's")

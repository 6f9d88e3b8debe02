"""`taskplane tasks …`: create, list, show, steer and watch tasks from a terminal or a script.

    taskplane tasks create TYPE [--input JSON] [--watch]
    taskplane tasks list [--status S] [--type T] [--limit N]
    taskplane tasks show ID
    taskplane tasks pause|resume|cancel ID
    taskplane tasks watch ID
    taskplane tasks input ID NAME VALUE [--idempotency-key KEY]
    taskplane tasks input-link ID NAME [--expires-in SECONDS]
    taskplane tasks bulk cancel|pause|resume [--status S] [--type T] … [--wait]
    taskplane tasks bulk show ID [--wait]

Every command takes `--api URL` (default `TASKPLANE_API_URL`, else
http://127.0.0.1:8000), `--key KEY` (default `TASKPLANE_API_KEY`; sent as
`Authorization: Bearer`) and `--json` (machine-readable output: the API's JSON,
or one event envelope per line for `watch`).

Exit codes, so a script can tell what happened (docs/cli.md):

    0  done; for `watch` (and `create --watch`): the task completed
    1  the task failed
    2  usage error: bad arguments or --input, or the API refused the request as invalid
    3  the task was cancelled
    4  no such task (404)
    5  the transition is not allowed now (409: resume a running task, pause a finished one)
    6  any other API error: unreachable, 401/403, 5xx, the stream given up on
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any, TextIO

from cli.api_client import ApiError, TaskApi
from cli.api_commands import run_api_command
from cli.bulk import add_bulk_command
from cli.exit_codes import (
    EXIT_API_ERROR,
    EXIT_CODES_HELP,
    EXIT_OK,
    STATUS_EXIT,
)
from cli.inputs import add_input_commands
from cli.values import parse_json_object, write_json
from cli.watch import StreamEnd, StreamGaveUpError, StreamRefusedError, follow
from cli.watch_render import BarsRenderer, JsonRenderer, Renderer, TaskProgress, TextRenderer
from settings import Settings

log = logging.getLogger(__name__)

# -- commands ------------------------------------------------------------------------------


def cmd_create(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    task_input = parse_json_object(args.input)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    body: dict[str, object] = {"type": args.type, "input": task_input}
    if args.concurrency_key:
        body["concurrency_key"] = args.concurrency_key
    if args.priority is not None:
        body["priority"] = args.priority
    created = api.call("POST", "/tasks", json=body, headers=headers)
    if args.json and not args.watch:
        write_json(out, created)
    elif not args.json:
        out.write(f"task {created['task_id']} created ({args.type}): {created['status']}\n")
        out.flush()
    if args.watch:
        return _watch(api, created["task_id"], args, out)
    return EXIT_OK


def cmd_list(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.type:
        params["type"] = args.type
    if args.cursor:
        params["cursor"] = args.cursor
    page = api.call("GET", "/tasks", params=params)
    if args.json:
        write_json(out, page)
        return EXIT_OK
    rows = [("TASK ID", "TYPE", "STATUS", "PROGRESS", "UPDATED")]
    rows += [
        (
            task["task_id"],
            task.get("type") or "?",
            task["status"],
            f"{task['progress']:.0f}%",
            task["updated_at"],
        )
        for task in page["tasks"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        out.write("\n")
    if page.get("next_cursor"):
        out.write(f"more: --cursor {page['next_cursor']}\n")
    return EXIT_OK


def cmd_show(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    task = api.call("GET", f"/tasks/{args.task_id}")
    if args.json:
        write_json(out, task)
        return EXIT_OK
    for field in ("task_id", "type", "status", "progress", "created_at", "updated_at"):
        value = task.get(field)
        if field == "progress":
            value = f"{value:.0f}%"
        out.write(f"{field + ':':<12} {value}\n")
    if task.get("result") is not None:
        out.write(f"{'result:':<12} {json.dumps(task['result'])}\n")
    if task.get("error"):
        out.write(f"{'error:':<12} {task['error']}\n")
    if task.get("metadata"):
        out.write(f"{'metadata:':<12} {json.dumps(task['metadata'])}\n")
    for stream, state in (task.get("outputs") or {}).items():
        out.write(f"{'output:':<12} {stream} ({state['length']} characters or items)\n")
    return EXIT_OK


def _control(action: str) -> Callable[[TaskApi, argparse.Namespace, TextIO], int]:
    def command(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
        answer = api.call("POST", f"/tasks/{args.task_id}/{action}")
        if args.json:
            write_json(out, answer)
        else:
            out.write(f"task {answer['task_id']}: {action} requested ({answer['status']})\n")
        return EXIT_OK

    command.__doc__ = f"Ask the task to {action}."
    return command


def cmd_watch(api: TaskApi, args: argparse.Namespace, out: TextIO) -> int:
    api.call("GET", f"/tasks/{args.task_id}")  # a clear 404 before any streaming
    return _watch(api, args.task_id, args, out)


def _watch(api: TaskApi, task_id: str, args: argparse.Namespace, out: TextIO) -> int:
    renderer: Renderer
    if args.json:
        renderer = JsonRenderer(out)
    elif out.isatty():
        renderer = BarsRenderer(out)
    else:
        renderer = TextRenderer(out)
    progress = TaskProgress(task_id)
    end = StreamEnd()
    events = follow(
        api.http,
        task_id,
        after=args.after,
        end=end,
        give_up_after=args.give_up_after,
        on_connection=renderer.connection,
    )
    # Over live bars the connection's ups and downs show on the task line instead.
    stream_log = logging.getLogger("cli.watch")
    quiet = isinstance(renderer, BarsRenderer) and not stream_log.isEnabledFor(logging.DEBUG)
    level = stream_log.level
    if quiet:
        stream_log.setLevel(logging.ERROR)
    try:
        for envelope in events:
            progress.apply(envelope)
            renderer.event(envelope, progress)
    except StreamRefusedError as exc:
        raise ApiError(exc.status, str(exc)) from exc
    except StreamGaveUpError as exc:
        raise ApiError(None, str(exc)) from exc
    finally:
        stream_log.setLevel(level)
    if end.terminal_type is None:  # 204: the task had ended before anything new came
        progress.status = api.call("GET", f"/tasks/{task_id}")["status"]
    renderer.finish(progress)
    return STATUS_EXIT.get(progress.status, EXIT_API_ERROR)


# -- argparse ------------------------------------------------------------------------------

TaskCommand = Callable[[TaskApi, argparse.Namespace, TextIO], int]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help="the API (default: TASKPLANE_API_URL)")
    common.add_argument("--key", help="an API key (default: TASKPLANE_API_KEY)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--after", type=int, default=0, metavar="N", help="start after event N (default: all)"
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="stop (exit 6) when the API stays unreachable this long (default 120)",
    )


def register(commands: Any) -> None:
    """Add `tasks` and its subcommands to the `taskplane` parser (cli/main.py)."""
    tasks = commands.add_parser(
        "tasks",
        help="create, list, show, steer and watch tasks through the API",
        description="Create, list, show, steer and watch tasks through the API.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks.set_defaults(handler=run)
    sub = tasks.add_subparsers(dest="task_command", required=True, metavar="COMMAND")
    common = _common_options()

    def add(name: str, command: TaskCommand, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        parser.set_defaults(task_handler=command)
        return parser

    create = add("create", cmd_create, "start a task of TYPE")
    create.add_argument("type", metavar="TYPE", help="e.g. demo.pipeline, demo.fanout")
    create.add_argument(
        "--input", default="{}", metavar="JSON", help="the input as JSON, or @file.json"
    )
    create.add_argument("--idempotency-key", metavar="KEY", help="repeat-safe creation")
    create.add_argument("--concurrency-key", metavar="KEY", help="what the limit counts per")
    create.add_argument("--priority", type=int, choices=range(1, 6), help="1 first, 5 last")
    create.add_argument("--watch", action="store_true", help="then watch it to its end")
    _watch_options(create)

    listing = add("list", cmd_list, "list tasks, newest first")
    listing.add_argument("--status", help="only tasks with this status")
    listing.add_argument("--type", help="only tasks of this type")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--cursor", help="the next page (from a previous listing)")

    for name, command, help_text in (
        ("show", cmd_show, "a task's status, progress and result"),
        ("pause", _control("pause"), "pause a task at its next step boundary"),
        ("resume", _control("resume"), "resume a paused task"),
        ("cancel", _control("cancel"), "cancel a task"),
    ):
        add(name, command, help_text).add_argument("task_id", metavar="ID")

    add_input_commands(add)
    add_bulk_command(add)

    watch = add("watch", cmd_watch, "follow a task's events live, a bar per step")
    watch.add_argument("task_id", metavar="ID")
    _watch_options(watch)


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the chosen `tasks` subcommand; every failure becomes a documented exit code."""
    command: TaskCommand = args.task_handler
    return run_api_command(settings, args, command, out)

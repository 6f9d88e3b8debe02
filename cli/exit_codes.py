"""The exit codes of `taskplane tasks …`, so a script can tell what happened.

One table shared by the commands (cli/tasks.py), the REST client's errors
(cli/api_client.py) and the tests; docs/cli.md documents the same numbers.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_API_ERROR = 6
EXIT_TERMINATED = 7

EXIT_CODES_HELP = """exit codes:
  0  ok; for watch and create --watch: the task completed
  1  the task failed
  2  usage error (arguments, --input), or the API refused the request as invalid
  3  the task was cancelled
  4  no such task
  5  the transition is not allowed now (409)
  6  any other API error (unreachable, 401/403, 5xx)
  7  the task was terminated in Temporal (terminate, or a workflow timeout)"""

STATUS_EXIT = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "cancelled": EXIT_CANCELLED,
    "terminated": EXIT_TERMINATED,
}

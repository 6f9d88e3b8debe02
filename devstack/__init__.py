"""The embedded local stack: real Postgres, Redis and Temporal servers run from wheels.

`make up` and the test suite both start their servers through this package, so
the servers a developer pokes at are the ones the tests ran against. Each
server is a supervised foreground child of the Python process that started it:
stopping that process (Ctrl-C, `stop()`, end of the test session) stops the
servers, and nothing is left running in the background.
"""

from devstack.postgres import EmbeddedPostgres
from devstack.process import ManagedProcess, ProcessFailedError
from devstack.redis import EmbeddedRedis
from devstack.stack import LocalStack, StackError
from devstack.temporal import TemporalDevServer

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "LocalStack",
    "ManagedProcess",
    "ProcessFailedError",
    "StackError",
    "TemporalDevServer",
]

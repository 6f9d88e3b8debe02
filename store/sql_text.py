"""Statement text as psycopg sends it: `compact` keeps hot statements under the length
psycopg caches the parse of.

psycopg turns a query's `%(name)s` placeholders into `$n` by scanning the whole text, and
remembers the result only for queries of at most `MAX_CACHED_STATEMENT_LENGTH` (4,096)
bytes; a longer one is scanned again on every execute (~100 µs for the 4.2 KB append,
issue 15). Comment lines and indentation are for readers of the source, not for Postgres.
"""

from __future__ import annotations

# psycopg's `MAX_CACHED_STATEMENT_LENGTH` (psycopg 3.1-3.3; not public API, so stated here).
PSYCOPG_CACHED_LENGTH = 4096


def compact(statement: str) -> str:
    """`statement` without blank lines, full-line `--` comments and indentation.

    Line breaks stay, so a comment at the end of a line still ends there. Only for
    statements with no string literal spanning lines (none of ours has one)."""
    lines = (line.strip() for line in statement.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))

"""Hot statements stay short enough for psycopg to cache their parse (store/sql_text.py)."""

from __future__ import annotations

from store.events import APPEND_CREATED_STATEMENT, APPEND_STATEMENT, append_statement
from store.sql_text import PSYCOPG_CACHED_LENGTH, compact


def test_the_appends_fit_psycopg_s_cached_length() -> None:
    # Longer, and psycopg scans the whole text again on every append (issue 15).
    for statement in (APPEND_STATEMENT, APPEND_CREATED_STATEMENT):
        assert len(statement.encode()) <= PSYCOPG_CACHED_LENGTH


def test_only_task_created_probes_events_before_its_insert() -> None:
    # A probe of `events` is set up over every partition at each execution (session 18).
    assert append_statement("task.created.v1") is APPEND_CREATED_STATEMENT
    assert append_statement("task.step.started.v1") is APPEND_STATEMENT
    assert "SELECT FROM events" in APPEND_CREATED_STATEMENT
    assert "SELECT FROM events" not in APPEND_STATEMENT


def test_compact_drops_comment_lines_and_indentation_only() -> None:
    statement = """
    SELECT a,  -- the first
        -- a whole line of comment
           'x  y' AS b

    FROM t
    """
    assert compact(statement) == "SELECT a,  -- the first\n'x  y' AS b\nFROM t"

"""Hot statements stay short enough for psycopg to cache their parse (store/sql_text.py)."""

from __future__ import annotations

from store.events import APPEND_STATEMENT
from store.sql_text import PSYCOPG_CACHED_LENGTH, compact


def test_the_append_fits_psycopg_s_cached_length() -> None:
    # Longer, and psycopg scans the whole text again on every append (issue 15).
    assert len(APPEND_STATEMENT.encode()) <= PSYCOPG_CACHED_LENGTH


def test_compact_drops_comment_lines_and_indentation_only() -> None:
    statement = """
    SELECT a,  -- the first
        -- a whole line of comment
           'x  y' AS b

    FROM t
    """
    assert compact(statement) == "SELECT a,  -- the first\n'x  y' AS b\nFROM t"

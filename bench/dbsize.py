"""What the database holds, table by table: bytes on disk and rows.

Read from the catalogue, not from a list of tables: every table of the schema
(and any partition or inheritance child of one, in whatever schema) is counted
under its top-most parent, so a table converted to time partitions is still one
line (its partitions summed), and a table a migration adds shows up by itself.

`total_bytes` is `pg_total_relation_size` (heap, indexes, TOAST, free-space and
visibility maps); `heap_bytes` is `pg_relation_size` (the main fork alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql

_SIZES = """
WITH RECURSIVE tree (oid, root) AS (
    SELECT c.oid, c.oid FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
    UNION ALL
    SELECT i.inhrelid, t.root FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT r.relname, count(*) AS relations,
       sum(pg_total_relation_size(t.oid))::bigint, sum(pg_relation_size(t.oid))::bigint
FROM tree t JOIN pg_class r ON r.oid = t.root
GROUP BY r.relname ORDER BY r.relname
"""


@dataclass(frozen=True)
class TableSize:
    relations: int  # the table itself, or its partitions and the parent
    total_bytes: int
    heap_bytes: int
    rows: int


@dataclass(frozen=True)
class DatabaseSize:
    database_bytes: int  # pg_database_size: every relation, the catalogue included
    tables: dict[str, TableSize] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database_bytes": self.database_bytes,
            "tables": {name: vars(size) for name, size in self.tables.items()},
        }


async def measure(conn: AsyncConnection, *, rows: bool = True) -> DatabaseSize:
    """Sizes of every table now (`rows`: also count them, a scan of each)."""
    cursor = await conn.execute(_SIZES)
    found = await cursor.fetchall()
    tables: dict[str, TableSize] = {}
    for name, relations, total, heap in found:
        count = 0
        if rows:
            counted = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(str(name)))
            )
            row = await counted.fetchone()
            count = int(row[0]) if row else 0
        tables[str(name)] = TableSize(int(relations), int(total), int(heap), count)
    cursor = await conn.execute("SELECT pg_database_size(current_database())")
    row = await cursor.fetchone()
    return DatabaseSize(int(row[0]) if row else 0, tables)


def per_task(before: DatabaseSize, after: DatabaseSize, tasks: int) -> dict[str, dict[str, float]]:
    """(after - before) / tasks for each table that changed: bytes (total, heap) and rows."""
    result: dict[str, dict[str, float]] = {}
    for name, now in after.tables.items():
        was = before.tables.get(name, TableSize(0, 0, 0, 0))
        delta = (now.total_bytes - was.total_bytes, now.heap_bytes - was.heap_bytes)
        rows = now.rows - was.rows
        if delta == (0, 0) and rows == 0:
            continue
        result[name] = {
            "total_bytes": round(delta[0] / tasks, 1),
            "heap_bytes": round(delta[1] / tasks, 1),
            "rows": round(rows / tasks, 2),
        }
    return result


def total_bytes(size: DatabaseSize) -> int:
    return sum(table.total_bytes for table in size.tables.values())

"""A worker process that takes durable messages and dies in the middle of handling them.

`python -m tests.integration.durable_child REDIS_URL DATABASE_URL STREAM GROUP TABLE`
runs a `HandlerRunner` whose handler writes its effect row and then hangs,
its transaction still open, printing `handling <event id>` first. The test
kills it with SIGKILL there: the effect must roll back with the processed
mark, and the messages it held must go to a living consumer.
"""

from __future__ import annotations

import asyncio
import sys

from psycopg import AsyncConnection, sql

from broker.redis import RedisBroker
from schemas import EventEnvelope
from store import open_pool
from store.processed import ProcessedEvents
from worker.event_handler import EventHandler
from worker.handlers import HandlerRunner


async def main(redis_url: str, database_url: str, stream: str, group: str, table: str) -> None:
    async def handle(event: EventEnvelope, conn: AsyncConnection) -> None:
        await conn.execute(
            sql.SQL("INSERT INTO {} (event_id) VALUES (%s)").format(sql.Identifier(table)),
            (event.id,),
        )
        sys.stdout.write(f"handling {event.id}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # hangs here, mid-transaction, until killed

    pool = await open_pool(database_url, min_size=1, max_size=2)
    broker = RedisBroker(redis_url, stream_key=stream, client_name="taskplane-test-doomed")
    await broker.connect()
    runner = HandlerRunner(broker, ProcessedEvents(pool), consumer="doomed", block_seconds=0.1)
    runner.register(EventHandler(group, handle))
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))

"""Telling a lost database connection from other database errors.

A connection is lost when the server terminated it (a restart, a failover,
pg_terminate_backend), the network dropped it, or none could be had (the server is
down, the pool timed out). The transaction it held is gone with it, rolled back
unless the loss came during COMMIT; work that is safe to run twice (idempotent
writes, unique keys) can then be retried on a new connection, and a request can be
answered 503 rather than 500."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django.db import DatabaseError, InterfaceError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE classes of a connection going away: 08 connection exception; 57P operator
# intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
# 57P05 idle session timeout). Not 57014 (a cancelled statement: the connection lives).
_LOST_SQLSTATE_PREFIXES = ("08", "57P")


def connection_lost(error: BaseException) -> bool:
    """Whether `error` (Django's wrapper or psycopg's own) means the connection is
    gone, rather than that a statement failed on a working connection."""
    from psycopg_pool import PoolTimeout

    if isinstance(error, InterfaceError):
        return True
    cause = error.__cause__ if isinstance(error, DatabaseError) and error.__cause__ else error
    if isinstance(cause, PoolTimeout):
        return True
    if not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    sqlstate = getattr(cause, "sqlstate", None)
    # No SQLSTATE: the client library failed (no server answer, a closed connection).
    return sqlstate is None or sqlstate.startswith(_LOST_SQLSTATE_PREFIXES)


def pool_exhausted(error: BaseException) -> bool:
    """Whether `error` is the shared pool's wait for a free connection running out: the
    server is there but busy, so trying again at once only makes the caller wait the
    pool's timeout again (answer 503 with Retry-After instead)."""
    from psycopg_pool import PoolTimeout

    cause = error.__cause__ if isinstance(error, DatabaseError) and error.__cause__ else error
    return isinstance(cause, PoolTimeout)


def connection_replace() -> None:
    """After a lost connection: drop it, and when the process shares a pool, check the
    pool's idle connections at once (one lost connection usually means a server
    restart or failover that took them all; otherwise each later request would find a
    dead one and back off before trying the next). The next query takes a new one."""
    connection.close()
    pool = getattr(connection, "pool", None)
    if pool is not None:
        try:
            pool.check()
        except Exception:  # the server may still be down: the pool retries by itself
            logger.warning("checking the pool's idle connections failed", exc_info=True)


def retry_on_connection_loss(
    work: Callable[[], T], *, attempts: int = 5, first_delay: float = 0.1, what: str = "work"
) -> T:
    """Run `work` (which must be safe to run twice: its transaction may have committed
    before the connection went) and, when the connection is lost outside any
    transaction, drop the connection and run it again, up to `attempts` times with a
    doubling delay. Other errors, and the last loss, are raised."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DatabaseError as error:
            if attempt == attempts or connection.in_atomic_block or not connection_lost(error):
                raise
            logger.warning(
                "database connection lost during %s (%s); retrying on a new one", what, error
            )
            connection_replace()
            time.sleep(first_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover

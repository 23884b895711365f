"""engagement_site.database: which errors mean the connection is gone (and so may be
retried on a new one, or answered 503), and which are a statement's own failure."""

from __future__ import annotations

import django.db
import psycopg
import psycopg.errors
import pytest
from psycopg_pool import PoolTimeout

from engagement_site.database import connection_lost, pool_exhausted, retry_on_connection_loss


def _wrapped(cause: Exception, wrapper=django.db.OperationalError) -> Exception:
    """As Django raises it: its own class, psycopg's error as the cause."""
    error = wrapper(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (_wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (_wrapped(psycopg.errors.CrashShutdown("crash")), True),
        (_wrapped(psycopg.errors.CannotConnectNow("starting up")), True),
        (_wrapped(psycopg.OperationalError("consuming input failed")), True),
        (_wrapped(psycopg.OperationalError("the connection is closed")), True),
        (_wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")), True),
        (django.db.InterfaceError("connection already closed"), True),
        (psycopg.errors.AdminShutdown("unwrapped"), True),
        (_wrapped(psycopg.errors.QueryCanceled("statement timeout")), False),
        (_wrapped(psycopg.errors.DeadlockDetected("deadlock")), False),
        (_wrapped(psycopg.errors.UniqueViolation("duplicate"), django.db.IntegrityError), False),
        (
            _wrapped(psycopg.errors.UndefinedTable("no such table"), django.db.ProgrammingError),
            False,
        ),
        (ValueError("not a database error"), False),
    ],
)
def test_connection_lost_tells_a_gone_connection_from_a_failed_statement(error, lost):
    assert connection_lost(error) is lost


def test_a_statement_error_is_not_retried(db):
    calls = []

    def work():
        calls.append(1)
        raise _wrapped(psycopg.errors.QueryCanceled("statement timeout"))

    with pytest.raises(django.db.OperationalError):
        retry_on_connection_loss(work, first_delay=0)
    assert calls == [1]


def test_only_the_pools_timeout_counts_as_an_exhausted_pool():
    assert pool_exhausted(_wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")))
    assert not pool_exhausted(_wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert not pool_exhausted(_wrapped(psycopg.OperationalError("the connection is closed")))

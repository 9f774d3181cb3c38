"""Database plumbing: the declarative ``Base``, engines and transactions.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that returned is on disk, which is
what "acknowledged" means for the log. Writers that must serialise (the sequencer) open their
transaction with ``BEGIN IMMEDIATE`` through :func:`write_engine`, so that two processes never
both read the same log head.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import QueuePool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions defer the write lock).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the project's SQLite or PostgreSQL settings."""
    if url.startswith("sqlite"):
        # Pooled connections: closing the last connection to a WAL database checkpoints and
        # deletes the WAL (an extra sync per commit). A pooled connection is used by one
        # thread at a time, so the same-thread check can go.
        kwargs.setdefault("pool_size", 8)
        kwargs.setdefault("max_overflow", 24)
        engine = create_engine(
            url, poolclass=QueuePool, connect_args={"check_same_thread": False}, **kwargs
        )
        _sqlite_setup(engine)
        _dispose_in_child(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    _dispose_in_child(engine)
    return engine


def _dispose_in_child(engine: Engine) -> None:
    # A forked worker must not use its parent's connections (SQLAlchemy's pooling docs).
    ref = weakref.ref(engine)

    def _after_fork() -> None:
        eng = ref()
        if eng is not None:
            eng.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork)


def write_engine(engine: Engine) -> Engine:
    """The same engine, but transactions take the write lock at BEGIN (SQLite)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any exception."""
    bind = write_engine(engine) if write else engine
    with Session(bind=bind, expire_on_commit=False) as session, session.begin():
        yield session


_T = TypeVar("_T")

#: Values per ``IN (...)`` list: SQLite builds older than 3.32 allow 999 bound parameters.
IN_BATCH = 900


def in_batches(items: Sequence[_T], size: int = IN_BATCH) -> Iterator[Sequence[_T]]:
    """``items`` in slices of at most ``size``, one ``IN (...)`` query each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]

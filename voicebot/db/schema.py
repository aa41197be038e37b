"""Is the database at the schema this code expects (Alembic's head revision)?

Used by ``voicebot serve``/``worker`` before they start (one clear line instead of a
traceback on the first query) and by ``/health/ready`` (503 while a deploy's migration
has not run yet).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.config import mask_url
from voicebot.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseUnavailableError(ConfigError):
    """The database cannot be reached (server down, wrong URL, missing folder)."""

    retryable = True
    code = "database_unavailable"


class SchemaNotAtHeadError(ConfigError):
    """The database is reachable but not migrated to this code's head revision."""

    code = "schema_not_migrated"


@dataclass(frozen=True, slots=True)
class SchemaState:
    """The revisions stored in the database and the ones this code expects."""

    current: frozenset[str]
    head: frozenset[str]

    @property
    def at_head(self) -> bool:
        return self.current == self.head


@functools.cache
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the migrations shipped in this package (read once)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def _current(connection: Connection) -> frozenset[str]:
    from alembic.runtime.migration import MigrationContext

    return frozenset(MigrationContext.configure(connection).get_current_heads())


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Read the stored revision; raises what the driver raises when the database is down."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaState(current=current, head=head_revisions())


def describe_database(url: str) -> str:
    """The masked URL, plus the absolute file for a relative SQLite path (the usual reason
    a database is "not migrated" is a command run from another folder)."""
    masked = mask_url(url)
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and not path.startswith((":memory:", "/")):
            return f"{masked} (file {os.path.abspath(path)})"
    return masked


async def require_schema_at_head(engine: AsyncEngine, url: str) -> None:
    """Raise a one-line :class:`DatabaseUnavailableError` or :class:`SchemaNotAtHeadError`
    naming the cause and the fix; return when the schema is at head."""
    from sqlalchemy.exc import SQLAlchemyError

    where = describe_database(url)
    try:
        state = await schema_state(engine)
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise DatabaseUnavailableError(
            f"database unreachable at {where}: {type(exc).__name__}: {reason}; "
            "check DATABASE_URL and that the database server is running"
        ) from exc
    if not state.at_head:
        current = ",".join(sorted(state.current)) or "empty"
        raise SchemaNotAtHeadError(
            f"database {where} is not migrated (at {current}, this code needs "
            f"{','.join(sorted(state.head))}); run `voicebot migrate` with the same "
            "DATABASE_URL (a relative SQLite path is relative to the current folder)"
        )

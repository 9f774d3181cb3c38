"""The Alembic migrations build exactly the schema the models declare (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import cases.models  # noqa: F401 - registers the case tables on Base.metadata
import evidence.models  # noqa: F401 - registers the evidence tables on Base.metadata
import ledger.models  # noqa: F401
from core.db import Base
from core.migrate import current_revisions, head_revisions, upgrade
from evidence import face_models, jobs  # noqa: F401 - registers the face and job tables
from web.context import AppContext


def test_migrated_schema_matches_the_models(instance: AppContext) -> None:
    with instance.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff


def test_upgrade_is_idempotent_and_at_head(instance: AppContext) -> None:
    assert current_revisions(instance.engine) == head_revisions()
    upgrade(instance.engine)
    assert current_revisions(instance.engine) == head_revisions()

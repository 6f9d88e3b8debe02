"""The PgBouncer settings: which URL session-bound work takes, when statements are prepared."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import Settings
from settings.config import ConfigurationError


def test_direct_url_defaults_to_the_database_url() -> None:
    settings = Settings(
        database_url="postgresql://db/taskplane", database_direct_url=None, database_pooler="none"
    )
    assert settings.require_database_direct_url() == "postgresql://db/taskplane"
    assert settings.database_prepared_statements  # no pooler: psycopg's default


def test_behind_a_transaction_pooler() -> None:
    settings = Settings(
        database_url="postgresql://pgbouncer:6432/taskplane",
        database_direct_url="postgresql://postgres:5432/taskplane",
        database_pooler="transaction",
    )
    assert settings.require_database_url() == "postgresql://pgbouncer:6432/taskplane"
    assert settings.require_database_direct_url() == "postgresql://postgres:5432/taskplane"
    assert not settings.database_prepared_statements


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPLANE_DATABASE_POOLER", "transaction")
    monkeypatch.setenv("TASKPLANE_DATABASE_DIRECT_URL", "postgresql://postgres/taskplane")
    settings = Settings()
    assert not settings.database_prepared_statements
    assert settings.require_database_direct_url() == "postgresql://postgres/taskplane"


def test_unknown_pooler_mode_and_missing_urls_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(database_pooler="session")
    with pytest.raises(ConfigurationError, match="TASKPLANE_DATABASE_URL"):
        Settings(database_url=None, database_direct_url=None).require_database_direct_url()

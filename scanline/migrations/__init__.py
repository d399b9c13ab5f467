"""Alembic migrations: the only place the database schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from scanline.adapters.db import database_url
from scanline.secrets import Secrets
from scanline.settings import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    url = database_url(settings.database_url,
                       Secrets(settings.secrets_dir).read("postgres-password", default="") or None)
    config.attributes["url"] = url
    return config


def upgrade(settings: Settings | None = None, revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings or Settings.from_env()), revision)

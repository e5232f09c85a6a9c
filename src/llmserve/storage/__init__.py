"""Persistence: SQLAlchemy models, engine and sessions, repositories, Alembic migrations."""

from llmserve.storage.db import Database
from llmserve.storage.repositories import ConversationRepository, NewMessage

__all__ = ["ConversationRepository", "Database", "NewMessage"]

"""Alembic environment: runs on the connection handed over by `storage.db.migrate_to_head`."""

from alembic import context

import storage.catalog  # noqa: F401  (catalog and payment tables live in their own module)
import storage.support  # noqa: F401  (support tables live in their own module)
from storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

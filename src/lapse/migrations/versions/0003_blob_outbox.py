"""Nothing left behind in storage: upload intents (an upload in progress, written before its first byte), blob
tombstones (the delete outbox, written with the file row's DELETE) and leases (one replica runs the sweeper's
safety-net listing).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # as in 0001


def upgrade() -> None:
    op.create_table(
        "upload_intents",
        sa.Column("storage_key", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("heartbeat_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("storage_key", name=op.f("pk_upload_intents")),
    )
    op.create_index("ix_upload_intents_heartbeat_at", "upload_intents", ["heartbeat_at"])
    op.create_table(
        "blob_tombstones",
        sa.Column("storage_key", sa.String(length=64), nullable=False),
        sa.Column("due_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("storage_key", name=op.f("pk_blob_tombstones")),
    )
    op.create_index("ix_blob_tombstones_due_at", "blob_tombstones", ["due_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_blob_tombstones_due_at", table_name="blob_tombstones")
    op.drop_table("blob_tombstones")
    op.drop_index("ix_upload_intents_heartbeat_at", table_name="upload_intents")
    op.drop_table("upload_intents")

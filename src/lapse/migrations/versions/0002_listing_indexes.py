"""Indexes that match every listing's filter and order: (owner, created_at, id), (file, created_at, id) and, for
admins who see everyone's, (created_at, id). A page then reads an index range instead of sorting the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_files_owner_id_created_at", table_name="files")
    op.create_index("ix_files_owner_id_created_at_id", "files", ["owner_id", "created_at", "id"])
    op.create_index("ix_files_created_at_id", "files", ["created_at", "id"])
    op.drop_index("ix_links_owner_id_created_at", table_name="links")
    op.drop_index("ix_links_file_id", table_name="links")
    op.create_index("ix_links_owner_id_created_at_id", "links", ["owner_id", "created_at", "id"])
    op.create_index("ix_links_file_id_created_at_id", "links", ["file_id", "created_at", "id"])
    op.create_index("ix_links_created_at_id", "links", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_links_created_at_id", table_name="links")
    op.drop_index("ix_links_file_id_created_at_id", table_name="links")
    op.drop_index("ix_links_owner_id_created_at_id", table_name="links")
    op.create_index("ix_links_file_id", "links", ["file_id"])
    op.create_index("ix_links_owner_id_created_at", "links", ["owner_id", "created_at"])
    op.drop_index("ix_files_created_at_id", table_name="files")
    op.drop_index("ix_files_owner_id_created_at_id", table_name="files")
    op.create_index("ix_files_owner_id_created_at", "files", ["owner_id", "created_at"])

"""Invitations by link: an unclaimed account's one-time token (its SHA-256) and expiry.
Invitations made before this have no token and can no longer be claimed by signing up with
their email alone; an administrator issues each a link ("New invitation link").

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("app_user", sa.Column("invite_hash", sa.String(64), nullable=True))
    op.add_column(
        "app_user", sa.Column("invite_expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("app_user", "invite_expires_at")
    op.drop_column("app_user", "invite_hash")

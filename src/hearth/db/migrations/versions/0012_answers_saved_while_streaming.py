"""Answers are stored as they stream: a `streaming` row from the first token, its text
saved every few seconds, so a replica that dies mid-answer leaves the text so far, marked
`interrupted` (11 characters: the status column widens) once its `updated_at` is stale.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("chat_message", "status", type_=sa.String(16))
    op.add_column(
        "chat_message",
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("chat_message", "updated_at")
    op.execute("UPDATE chat_message SET status = 'stopped' WHERE length(status) > 10")
    op.alter_column("chat_message", "status", type_=sa.String(10))

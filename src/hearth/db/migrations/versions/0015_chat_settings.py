"""Per-chat settings: a system prompt, a temperature and an answer-length ceiling, each
empty (null) to take the site's default.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat", sa.Column("system_prompt", sa.Text()))
    op.add_column("chat", sa.Column("temperature", sa.Float()))
    op.add_column("chat", sa.Column("max_tokens", sa.Integer()))


def downgrade() -> None:
    for column in ("max_tokens", "temperature", "system_prompt"):
        op.drop_column("chat", column)

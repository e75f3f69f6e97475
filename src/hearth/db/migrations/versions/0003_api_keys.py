"""API keys: a visible prefix, the SHA-256 of the secret, owner, team, allowed models,
limits, expiry and revocation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(200), nullable=False, index=True),
        sa.Column("team_id", sa.String(200)),
        sa.Column("models", sa.ARRAY(sa.String(200))),
        sa.Column("requests_per_minute", sa.Integer),
        sa.Column("tokens_per_minute", sa.Integer),
        sa.Column("max_concurrent", sa.Integer),
        sa.Column("budget", sa.Float),
        sa.Column("budget_period", sa.String(10)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.UniqueConstraint("prefix", name="uq_api_key_prefix"),
    )


def downgrade() -> None:
    op.drop_table("api_key")

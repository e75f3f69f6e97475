"""Accounts (users, groups with their team limits, sessions), chats and their messages,
settings in the database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    )


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("oidc_subject", sa.String(300), unique=True),
        _now(),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
    )
    op.create_index("uq_app_user_email", "app_user", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "user_group",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("requests_per_minute", sa.Integer),
        sa.Column("tokens_per_minute", sa.Integer),
        sa.Column("max_concurrent", sa.Integer),
        sa.Column("budget", sa.Float),
        sa.Column("budget_period", sa.String(10)),
        _now(),
    )
    op.create_table(
        "group_member",
        sa.Column(
            "group_id",
            sa.String(200),
            sa.ForeignKey("user_group.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(200),
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_group_member_user_id", "group_member", ["user_id"])
    op.create_table(
        "user_session",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(200),
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _now(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("user_agent", sa.String(300)),
    )
    op.create_index("ix_user_session_user_id", "user_session", ["user_id"])
    op.create_table(
        "app_setting",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", JSONB, nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_table(
        "chat",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("owner_id", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("collection_ids", sa.ARRAY(UUID), nullable=False),
        _now(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("ix_chat_owner_list", "chat", ["owner_id", "archived", "updated_at", "id"])
    op.create_table(
        "chat_message",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("chat_id", UUID, sa.ForeignKey("chat.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("citations", JSONB),
        sa.Column("error", sa.Text),
        _now(),
        sa.Column(
            "tsv",
            TSVECTOR,
            sa.Computed("to_tsvector('simple', content)", persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_chat_message_chat_id", "chat_message", ["chat_id", "id"])
    op.create_index("ix_chat_message_tsv", "chat_message", ["tsv"], postgresql_using="gin")


def downgrade() -> None:
    for table in ("chat_message", "chat", "app_setting", "user_session", "group_member"):
        op.drop_table(table)
    op.drop_table("user_group")
    op.drop_table("app_user")

"""Saved presets ("models" in Open WebUI's terms): a base model, a system prompt,
parameters and collections, shared with groups. A chat remembers the preset it started
from (null once that preset is deleted; the chat keeps the values it copied).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_preset",
        sa.Column("id", postgresql.UUID(), nullable=False),
        sa.Column("owner_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("system_prompt", sa.Text()),
        sa.Column("temperature", sa.Float()),
        sa.Column("max_tokens", sa.Integer()),
        sa.Column("collection_ids", sa.ARRAY(postgresql.UUID()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_preset")),
    )
    op.create_index("ix_chat_preset_owner_id", "chat_preset", ["owner_id", "name"])
    op.create_table(
        "chat_preset_share",
        sa.Column("preset_id", postgresql.UUID(), nullable=False),
        sa.Column("group_id", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["preset_id"],
            ["chat_preset.id"],
            name=op.f("fk_chat_preset_share_preset_id_chat_preset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("preset_id", "group_id", name=op.f("pk_chat_preset_share")),
    )
    op.create_index("ix_chat_preset_share_group_id", "chat_preset_share", ["group_id"])
    op.add_column("chat", sa.Column("preset_id", postgresql.UUID()))
    op.create_index(
        "ix_chat_preset_id",
        "chat",
        ["preset_id"],
        postgresql_where=sa.text("preset_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_chat_preset_id", table_name="chat")
    op.drop_column("chat", "preset_id")
    op.drop_index("ix_chat_preset_share_group_id", table_name="chat_preset_share")
    op.drop_table("chat_preset_share")
    op.drop_index("ix_chat_preset_owner_id", table_name="chat_preset")
    op.drop_table("chat_preset")

"""Chat history as a tree: each message follows its parent (regenerate and edit add a
branch, nothing is deleted), and each chat names its active leaf. Existing chats become
one line: each message's parent is the one before it in its chat, the last one current.

The parent's foreign key is on (chat_id, parent_id), so a message can only follow one of
its own chat; that needs (chat_id, id) unique, which the existing index becomes.

A downgrade keeps every message but forgets the tree: the branches then read as one line.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat_message", sa.Column("parent_id", sa.BigInteger(), nullable=True))
    op.add_column("chat", sa.Column("current_message_id", sa.BigInteger(), nullable=True))
    op.execute(
        """
        UPDATE chat_message AS m SET parent_id = line.previous
        FROM (
            SELECT id, lag(id) OVER (PARTITION BY chat_id ORDER BY id) AS previous
            FROM chat_message
        ) AS line
        WHERE m.id = line.id AND line.previous IS NOT NULL
        """
    )
    op.execute(
        "UPDATE chat SET current_message_id = "
        "(SELECT max(id) FROM chat_message WHERE chat_message.chat_id = chat.id)"
    )
    op.drop_index("ix_chat_message_chat_id", table_name="chat_message")
    op.create_index("ix_chat_message_chat_id", "chat_message", ["chat_id", "id"], unique=True)
    op.create_index("ix_chat_message_parent", "chat_message", ["chat_id", "parent_id"])
    op.create_foreign_key(
        "fk_chat_message_parent",
        "chat_message",
        "chat_message",
        ["chat_id", "parent_id"],
        ["chat_id", "id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint("fk_chat_message_parent", "chat_message", type_="foreignkey")
    op.drop_index("ix_chat_message_parent", table_name="chat_message")
    op.drop_index("ix_chat_message_chat_id", table_name="chat_message")
    op.create_index("ix_chat_message_chat_id", "chat_message", ["chat_id", "id"])
    op.drop_column("chat", "current_message_id")
    op.drop_column("chat_message", "parent_id")

"""Usage rows keep whom an application asked for: its request's `user` or
`safety_identifier` (hearth.gateway.identifiers). Nullable, no index: the usage report
aggregates it over a period, which the BRIN index on created_at already bounds.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_record", sa.Column("end_user", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_record", "end_user")

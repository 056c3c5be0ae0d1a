"""add products.sku

Revision ID: 0002_add_products_sku
Revises: 0001_create_products
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_add_products_sku"
down_revision = "0001_create_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("sku", sa.Text, nullable=True))
    op.execute("UPDATE products SET sku = 'SKU-' || id")
    op.create_index("products_sku", "products", ["sku"], unique=True)


def downgrade() -> None:
    op.drop_index("products_sku", table_name="products")
    op.drop_column("products", "sku")

"""Prices and sizes at the instrument's own precision (SPEC Part B.14), mm_orders:
price, size and filled_size from numeric(28,8) to numeric without precision or
scale, in a transaction of its own after mm_fills' (0005 says why, and why the
constraints come back NOT VALID; 0007 validates them)."""

import common.fields
from django.db import migrations

FORWARD = """
SET LOCAL lock_timeout = '5s';
ALTER TABLE mm_orders
    DROP CONSTRAINT order_price_size_positive,
    DROP CONSTRAINT order_filled_within_size,
    ALTER COLUMN price TYPE numeric,
    ALTER COLUMN size TYPE numeric,
    ALTER COLUMN filled_size TYPE numeric,
    ADD CONSTRAINT order_price_size_positive CHECK (price > 0 AND size > 0) NOT VALID,
    ADD CONSTRAINT order_filled_within_size
        CHECK (filled_size >= 0 AND filled_size <= size) NOT VALID;
"""

BACKWARD = """
ALTER TABLE mm_orders
    ALTER COLUMN price TYPE numeric(28, 8),
    ALTER COLUMN size TYPE numeric(28, 8),
    ALTER COLUMN filled_size TYPE numeric(28, 8);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0005_fill_prices_and_sizes_at_instrument_precision'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name='mmorder',
                    name='filled_size',
                    field=common.fields.InstrumentDecimalField(default=0),
                ),
                migrations.AlterField(
                    model_name='mmorder',
                    name='price',
                    field=common.fields.InstrumentDecimalField(),
                ),
                migrations.AlterField(
                    model_name='mmorder',
                    name='size',
                    field=common.fields.InstrumentDecimalField(),
                ),
            ],
        ),
    ]

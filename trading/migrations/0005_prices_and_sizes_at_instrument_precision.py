"""Prices and sizes at the instrument's own precision (SPEC Part B.14):
mm_orders.price/size/filled_size and mm_fills.price/size from numeric(28,8) to
numeric without precision or scale (common/fields.py).

Dropping the type modifier of a numeric column rewrites nothing, but PostgreSQL
re-checks every CHECK constraint on an altered column with a scan of the whole
table under the ACCESS EXCLUSIVE lock (about 2 s a column on 10 M fills). So the
three constraints on these columns are dropped and added back NOT VALID in the
same statement, which holds the lock for milliseconds
(bench/precision_migration.py); 0006 validates them under a lock that lets
reads and writes go on. The lock timeout makes the migration fail fast, to be
retried, rather than queue every query behind a long one.

Rows written before this migration keep the 8 places they were rounded to: a
PEPE price 0.000010006 stored as 0.00001001 cannot be recovered from the
database (README, "Precision").
"""

import common.fields
from django.db import migrations

FORWARD = """
SET LOCAL lock_timeout = '10s';
ALTER TABLE mm_orders
    DROP CONSTRAINT order_price_size_positive,
    DROP CONSTRAINT order_filled_within_size,
    ALTER COLUMN price TYPE numeric,
    ALTER COLUMN size TYPE numeric,
    ALTER COLUMN filled_size TYPE numeric,
    ADD CONSTRAINT order_price_size_positive CHECK (price > 0 AND size > 0) NOT VALID,
    ADD CONSTRAINT order_filled_within_size
        CHECK (filled_size >= 0 AND filled_size <= size) NOT VALID;
ALTER TABLE mm_fills
    DROP CONSTRAINT fill_price_size_positive,
    ALTER COLUMN price TYPE numeric,
    ALTER COLUMN size TYPE numeric,
    ADD CONSTRAINT fill_price_size_positive CHECK (price > 0 AND size > 0) NOT VALID;
"""

# Back to 8 places: a rewrite of both tables, rounding every finer price again.
BACKWARD = """
ALTER TABLE mm_orders
    ALTER COLUMN price TYPE numeric(28, 8),
    ALTER COLUMN size TYPE numeric(28, 8),
    ALTER COLUMN filled_size TYPE numeric(28, 8);
ALTER TABLE mm_fills
    ALTER COLUMN price TYPE numeric(28, 8),
    ALTER COLUMN size TYPE numeric(28, 8);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0004_fill_order_set_null'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name='mmfill',
                    name='price',
                    field=common.fields.InstrumentDecimalField(),
                ),
                migrations.AlterField(
                    model_name='mmfill',
                    name='size',
                    field=common.fields.InstrumentDecimalField(),
                ),
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

"""Prices and sizes at the instrument's own precision (SPEC Part B.14), mm_fills:
price and size from numeric(28,8) to numeric without precision or scale
(common/fields.py); 0006 does mm_orders, 0007 validates.

Dropping the type modifier of a numeric column rewrites nothing, but PostgreSQL
re-checks every CHECK constraint on an altered column with a scan of the whole
table under the ACCESS EXCLUSIVE lock (5-8 s for these two columns on 10 M
fills). So the constraint is dropped and added back NOT VALID in the statement
that changes the types, which holds the lock for milliseconds (7 ms on 10 M
fills, bench/precision_migration.py); 0007 validates it under a lock that lets
reads and writes go on.

One table a migration, each in its own transaction: holding mm_orders' lock
while waiting for mm_fills' deadlocks with any insert into mm_fills, which
takes mm_fills and then mm_orders (its order_id foreign key). The lock timeout
makes a migration stuck behind a long transaction fail, to be run again,
rather than queue every query on the table behind it.

A client holding a prepared statement that returns price or size gets one
"cached plan must not change result type" error afterwards; MMS prepares none
(Django never does, the order journal only its INSERT).

Rows written before this migration keep the 8 places they were rounded to: a
PEPE price 0.000010006 stored as 0.00001001 cannot be recovered from the
database (README, "Precision").
"""

import common.fields
from django.db import migrations

FORWARD = """
SET LOCAL lock_timeout = '5s';
ALTER TABLE mm_fills
    DROP CONSTRAINT fill_price_size_positive,
    ALTER COLUMN price TYPE numeric,
    ALTER COLUMN size TYPE numeric,
    ADD CONSTRAINT fill_price_size_positive CHECK (price > 0 AND size > 0) NOT VALID;
"""

# Back to 8 places: a rewrite of the table, rounding every finer price again.
BACKWARD = """
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
            ],
        ),
    ]

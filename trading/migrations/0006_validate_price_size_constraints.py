"""Validates the constraints 0005 added back NOT VALID: a scan of each table under
SHARE UPDATE EXCLUSIVE, which lets reads and writes go on (its own transaction,
after 0005's ACCESS EXCLUSIVE lock was released)."""

from django.db import migrations

FORWARD = """
ALTER TABLE mm_orders VALIDATE CONSTRAINT order_price_size_positive;
ALTER TABLE mm_orders VALIDATE CONSTRAINT order_filled_within_size;
ALTER TABLE mm_fills VALIDATE CONSTRAINT fill_price_size_positive;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0005_prices_and_sizes_at_instrument_precision'),
    ]

    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]

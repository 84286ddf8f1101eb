from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from tests.factories import FillFactory


@pytest.mark.django_db
def test_models_and_migrations_agree():
    """A model change without its migration fails here, not in production."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_prices_move_to_the_instruments_precision_without_a_rewrite():
    """trading 0005-0007: mm_fills' price and size lose their fixed 8 places as a
    change of the catalogue only (the table's file stays the same: no rewrite
    under the exclusive lock), the check constraints still hold, a PEPE price is
    kept from then on, and one already rounded stays rounded: nothing in the
    database remembers its last digit."""
    executor = MigrationExecutor(connection)
    executor.migrate([("trading", "0004_fill_order_set_null")])
    try:
        rounded = FillFactory(symbol="PEPEUSDT-PERP", price=Decimal("0.000010006"), size=1000)
        rounded.refresh_from_db()
        assert rounded.price == Decimal("0.00001001")  # numeric(28,8) rounded it silently
        before = _filenode("mm_fills")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert _filenode("mm_fills") == before
    rounded.refresh_from_db()
    assert format(rounded.price, "f") == "0.00001001"
    kept = FillFactory(symbol="PEPEUSDT-PERP", price=Decimal("0.000010006"), size=1000)
    kept.refresh_from_db()
    assert format(kept.price, "f") == "0.000010006"
    with pytest.raises(IntegrityError), transaction.atomic():
        FillFactory(price=Decimal("-0.000000001"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid IN ('mm_fills'::regclass,"
            " 'mm_orders'::regclass) AND contype = 'c' AND NOT convalidated"
        )
        assert cursor.fetchall() == []  # 0007 validated what 0005-0006 added back NOT VALID


def _filenode(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_filenode(%s)", [table])
        return cursor.fetchone()[0]

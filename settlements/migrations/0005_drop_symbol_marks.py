import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Every settlement belongs to a participant-month now (0004); the per-symbol
    marks are gone from the rows (their last values are in each row's audit trail)."""

    dependencies = [
        ('settlements', '0004_participant_month_data'),
    ]

    operations = [
        migrations.AlterField(
            model_name='settlement',
            name='participant_month',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='settlements', to='settlements.participantmonth'),
        ),
        migrations.RemoveField(
            model_name='settlement',
            name='cumulative_gross_usdt',
        ),
        migrations.RemoveField(
            model_name='settlement',
            name='high_water_mark_usdt',
        ),
        migrations.RemoveField(
            model_name='settlement',
            name='share_base_usdt',
        ),
    ]

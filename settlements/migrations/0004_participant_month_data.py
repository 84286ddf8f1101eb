"""Settlements made while the high-water mark was per participant × symbol get
their participant-months (SPEC Part B.21).

For each participant, month by month in order, and each symbol it had a
settlement in so far: the symbol's mark before the month and its cumulative
gross after it are those its row records (a symbol without a row that month
carries its latest). The participant-month records

    mark before  = Σ over the symbols of the mark before
    cumulative   = Σ over the symbols of the cumulative gross after
    mark after   = Σ over the symbols of max(mark before, cumulative after)
    gross, share base, share, net = Σ over the month's settlements

Summing the marks keeps what the platform has already taken its share on: each
month's share base was the rise of its symbol's mark, so the sum of the marks
is all the gross ever charged, and the first month computed per participant
charges none of it again. A symbol's loss not yet made good stays a loss to
make good, now by profit in any symbol.

The settlements' figures are not changed: they were computed (and may have
been paid) per symbol, and their participant-month says so
(high_water_mark_scope SYMBOL, no inputs hash). Approving one still PENDING
is refused until its participant-month is rejected and recalculated, which
computes it per participant; a month approved in part before this can have
its open settlements rejected, not recalculated (the approved ones are final). Each settlement's per-symbol mark, cumulative
gross and share base, dropped from the row by 0005, are kept in an audit row
of its own (action high_water_mark_to_participant, old → null).

Backwards: the per-symbol figures come back from those audit rows; a
settlement computed per participant has none, and the migration refuses.
"""

from decimal import Decimal
from itertools import groupby
from operator import attrgetter

from django.db import migrations

ACTOR = "migration settlements.0004"
ACTION = "high_water_mark_to_participant"
MOVED = ("high_water_mark_usdt", "cumulative_gross_usdt", "share_base_usdt")
ZERO = Decimal(0)
REASON = (
    "SPEC Part B.21: the high-water mark is the participant's; this symbol's mark is "
    "summed into the participant-month's"
)


def _text(value):
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _audit(AuditLog, entity_type, entity_id, action, changes, state=""):
    return AuditLog(
        entity_type=entity_type,
        entity_id=str(entity_id),
        action=action,
        from_state=state,
        to_state=state,
        changes=changes,
        actor=ACTOR,
        actor_kind="system",
        reason=REASON,
    )


def participant_months_from_symbol_marks(apps, schema_editor):
    Settlement = apps.get_model("settlements", "Settlement")
    ParticipantMonth = apps.get_model("settlements", "ParticipantMonth")
    AuditLog = apps.get_model("common", "AuditLog")
    rows = Settlement.objects.filter(participant_month__isnull=True).order_by(
        "participant_id", "period_start", "symbol"
    )
    audits = []
    # A small table (participants × symbols × months), read whole before writing.
    for participant_id, of_participant in groupby(list(rows), attrgetter("participant_id")):
        latest = {}  # symbol → (cumulative gross, mark) after its latest month so far
        for period_start, of_month in groupby(of_participant, attrgetter("period_start")):
            settlements = list(of_month)
            symbols = {s.symbol for s in settlements}
            mark_before = sum((s.high_water_mark_usdt for s in settlements), ZERO) + sum(
                (mark for symbol, (_, mark) in latest.items() if symbol not in symbols), ZERO
            )
            for s in settlements:
                mark_after = max(s.high_water_mark_usdt, s.cumulative_gross_usdt)
                latest[s.symbol] = (s.cumulative_gross_usdt, mark_after)
            computed = [s.computed_at for s in settlements if s.computed_at is not None]
            month = ParticipantMonth.objects.create(
                participant_id=participant_id,
                period_start=period_start,
                period_end=settlements[0].period_end,
                gross_usdt=sum((s.gross_usdt for s in settlements), ZERO),
                positive_gross_usdt=sum((max(ZERO, s.gross_usdt) for s in settlements), ZERO),
                high_water_mark_usdt=mark_before,
                cumulative_gross_usdt=sum((c for c, _ in latest.values()), ZERO),
                high_water_mark_after_usdt=sum((m for _, m in latest.values()), ZERO),
                share_base_usdt=sum((s.share_base_usdt for s in settlements), ZERO),
                platform_share_usdt=sum((s.platform_share_usdt for s in settlements), ZERO),
                net_usdt=sum((s.net_usdt for s in settlements), ZERO),
                revenue_model=settlements[0].revenue_model,
                revenue_share_pct=settlements[0].revenue_share_pct,
                high_water_mark_scope="SYMBOL",
                inputs_sha256="",
                computed_at=max(computed) if computed else None,
            )
            Settlement.objects.filter(pk__in=[s.pk for s in settlements]).update(
                participant_month=month
            )
            audits.append(
                _audit(
                    AuditLog,
                    "participant_month",
                    month.pk,
                    "create",
                    {
                        name: [None, _text(getattr(month, name))]
                        for name in (
                            "high_water_mark_usdt",
                            "cumulative_gross_usdt",
                            "high_water_mark_after_usdt",
                            "platform_share_usdt",
                            "high_water_mark_scope",
                        )
                    },
                )
            )
            audits.extend(
                _audit(
                    AuditLog,
                    "settlement",
                    s.pk,
                    ACTION,
                    {
                        **{name: [_text(getattr(s, name)), None] for name in MOVED},
                        "participant_month": [None, str(month.pk)],
                    },
                    state=s.state,
                )
                for s in settlements
            )
    AuditLog.objects.bulk_create(audits, batch_size=1000)


def symbol_marks_back(apps, schema_editor):
    Settlement = apps.get_model("settlements", "Settlement")
    ParticipantMonth = apps.get_model("settlements", "ParticipantMonth")
    AuditLog = apps.get_model("common", "AuditLog")
    kept = {
        audit.entity_id: audit.changes
        for audit in AuditLog.objects.filter(entity_type="settlement", action=ACTION).order_by("id")
    }
    for settlement in Settlement.objects.all():
        changes = kept.get(str(settlement.pk))
        if changes is None:
            raise RuntimeError(
                f"settlement {settlement.pk} was computed with the participant's high-water "
                "mark (SPEC Part B.21) and has no per-symbol mark to go back to"
            )
        for name in MOVED:
            setattr(settlement, name, Decimal(changes[name][0]))
        settlement.participant_month = None
        settlement.save(update_fields=[*MOVED, "participant_month"])
    ParticipantMonth.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0002_outbox_trace_context"),
        ("settlements", "0003_participant_month"),
    ]

    operations = [
        migrations.RunPython(participant_months_from_symbol_marks, symbol_marks_back),
    ]

"""Settlement routes (SPEC Part B.16, B.21): finance moves the lifecycle (approve,
reject and recalculate a participant-month as a whole; mark settled or failed
one settlement, four-eyes) and downloads the payout file; staff read
everything; an lp reads only its own participant's settlements and statements."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from common.api import JsonErrorsMixin, ListApi, ReasonSerializer, error_responses, format_parameter
from common.auth import FINANCE_ONLY, lp_participant_id, request_actor, require_own_participant
from common.filters import StrictDjangoFilterBackend
from common.spreadsheet import csv_cell
from participants.selectors import participant_get
from pools.models import SYMBOL_PATTERN
from settlements import payouts, selectors, services, statements
from settlements.api.filters import SettlementFilter
from settlements.api.serializers import (
    SettlementApproveInputSerializer,
    SettlementMarkFailedInputSerializer,
    SettlementMarkSettledInputSerializer,
    SettlementOutputSerializer,
    SettlementRejectInputSerializer,
    StatementFillsSerializer,
    StatementFundingSerializer,
    StatementOutputSerializer,
    StatementParticipantMonthSerializer,
    StatementQScoreSerializer,
    StatementTotalsSerializer,
)
from settlements.enums import SettlementState
from settlements.models import Settlement

# The list filters whose schema django-filter cannot say: the symbol's pattern.
_FILTER_PARAMETERS = [
    OpenApiParameter(
        "symbol",
        str,
        pattern=f"^{SYMBOL_PATTERN}$",
        description="only this symbol (one some pool has or had; another: 422)",
    ),
    OpenApiParameter(
        "participant",
        OpenApiTypes.UUID,
        description="only this participant's (one that exists; another: 422)",
    ),
]


class SettlementListApi(ListApi):
    serializer_class = SettlementOutputSerializer
    filterset_class = SettlementFilter
    ordering_fields = ["period_start", "created_at", "updated_at", "symbol", "state", "net_usdt"]
    lp_readable = True

    def get_queryset(self) -> Any:
        return selectors.settlement_list(participant_id=lp_participant_id(self.request))

    @extend_schema(
        parameters=_FILTER_PARAMETERS,
        responses={200: SettlementOutputSerializer(many=True), **error_responses(400, 422)},
        description=(
            "Settlements, newest period first unless `ordering` says otherwise. "
            "An lp sees only its own participant's."
        ),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SettlementPendingListApi(ListApi):
    serializer_class = SettlementOutputSerializer
    filter_backends = [StrictDjangoFilterBackend]  # the queue's order is fixed: oldest first
    filterset_class = SettlementFilter
    lp_readable = True

    def get_queryset(self) -> Any:
        return selectors.settlement_pending_list(participant_id=lp_participant_id(self.request))

    @extend_schema(
        parameters=_FILTER_PARAMETERS,
        responses={200: SettlementOutputSerializer(many=True), **error_responses(400, 422)},
        description="The approval queue: PENDING settlements, oldest period first.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SettlementDetailApi(APIView):
    lp_readable = True

    @extend_schema(responses={200: SettlementOutputSerializer, **error_responses(401, 403, 404)})
    def get(self, request: Request, settlement_id: str) -> Response:
        settlement = selectors.settlement_get(settlement_id=settlement_id)
        require_own_participant(request, settlement.participant_id)
        return Response(SettlementOutputSerializer(settlement).data)


class _SettlementActionApi(APIView):
    """One lifecycle step: find the settlement, validate the body, call the service."""

    write_roles = FINANCE_ONLY
    input_serializer: type = ReasonSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        raise NotImplementedError

    def post(self, request: Request, settlement_id: str) -> Response:
        settlement = selectors.settlement_get(settlement_id=settlement_id)
        serializer = self.input_serializer(
            data=request.data, context={"actor": request_actor(request)}
        )
        serializer.is_valid(raise_exception=True)
        settlement = self.act(request, settlement, serializer.validated_data)
        settlement = selectors.settlement_get(settlement_id=settlement.pk)
        return Response(SettlementOutputSerializer(settlement).data)


_ACTION_RESPONSES = {200: SettlementOutputSerializer, **error_responses(409, 422)}
_TOGETHER = (
    " The participant's settlements of the month share one high-water mark and one "
    "platform share (SPEC Part B.21), so every settlement of the participant-month moves "
    "with this one, in one transaction; if any cannot (its state does not allow it), none "
    "moves and the 409 names each with its state (`settlement_states`). The answer is the "
    "settlement named in the path."
)
_FOUR_EYES = (
    " Four-eyes (SETTLEMENT_FOUR_EYES, on by default): the user who approved the "
    "settlement may not do this; the refusal is a 403 with code `four_eyes`, and the "
    "attempt is audited (action `<action>_refused`)."
)


@extend_schema(
    request=SettlementApproveInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "PENDING → APPROVED. `approved_by` must be the caller. Finance only. A 409 if the "
        "inputs of the participant-month moved since its figures were computed." + _TOGETHER
    ),
)
class SettlementApproveApi(_SettlementActionApi):
    input_serializer = SettlementApproveInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_approve(settlement=settlement, actor=request_actor(request))


@extend_schema(
    request=SettlementRejectInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "PENDING → REJECTED, with a reason. `rejected_by` must be the caller. Finance only."
        " A settlement of the month already REJECTED stays so." + _TOGETHER
    ),
)
class SettlementRejectApi(_SettlementActionApi):
    input_serializer = SettlementRejectInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_reject(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "REJECTED → PENDING: back into the approval queue with the participant-month's "
        "figures computed again (a symbol with new activity gets a settlement of its own). "
        "Finance only. A 409 while a later month of the participant, which carries this "
        "one's high-water mark, is not rejected." + _TOGETHER
    ),
)
class SettlementRecalculateApi(_SettlementActionApi):
    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_recalculate(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )


@extend_schema(
    request=SettlementMarkSettledInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "APPROVED → SETTLED, or a retry FAILED → SETTLED under the same id: finance "
        "executed the transfer outside MMS. Finance only; this settlement alone." + _FOUR_EYES
    ),
)
class SettlementMarkSettledApi(_SettlementActionApi):
    input_serializer = SettlementMarkSettledInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_mark_settled(
            settlement=settlement,
            actor=request_actor(request),
            payout_reference=data["payout_reference"],
        )


@extend_schema(
    request=SettlementMarkFailedInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "APPROVED → FAILED, with a reason; it may be retried. Finance only; this settlement "
        "alone." + _FOUR_EYES
    ),
)
class SettlementMarkFailedApi(_SettlementActionApi):
    input_serializer = SettlementMarkFailedInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_mark_failed(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )


# --- the monthly statement ----------------------------------------------------

STATEMENT_PARTS: tuple[tuple[str, type[Serializer[Any]]], ...] = (
    ("settlements", SettlementOutputSerializer),
    ("participant_month", StatementParticipantMonthSerializer),
    ("totals", StatementTotalsSerializer),
    ("fills", StatementFillsSerializer),
    ("funding", StatementFundingSerializer),
    ("qscores", StatementQScoreSerializer),
)
STATEMENT_HEADER = ("participant_id", "short_id", "name", "month", "period_start", "period_end")


class CSVRenderer(BaseRenderer):
    """A text/csv download; a subclass says what text `data` becomes."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return self.text(data).encode(self.charset)

    def text(self, data: Any) -> str:
        raise NotImplementedError


class StatementCSVRenderer(CSVRenderer):
    """The statement as CSV: per part a row naming it, a header row, its rows and
    an empty row. Values are the JSON body's strings (Decimals in plain notation)."""

    def text(self, data: Any) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        participant = data["participant"]
        writer.writerow(["statement"])
        writer.writerow(STATEMENT_HEADER)
        writer.writerow(
            csv_cell(v)
            for v in (
                participant["id"],
                participant["short_id"],
                participant["name"],
                data["month"],
                data["period_start"],
                data["period_end"],
            )
        )
        for name, serializer_class in STATEMENT_PARTS:
            header = list(serializer_class().fields)
            part = data[name]
            writer.writerow([])
            writer.writerow([name])
            writer.writerow(header)
            rows = part if isinstance(part, list) else [] if part is None else [part]
            for row in rows:
                writer.writerow(csv_cell(row[column]) for column in header)
        return out.getvalue()


class StatementApi(JsonErrorsMixin, APIView):
    """JSON by default; `?format=csv` / `?format=html` (or the Accept header) pick
    the CSV download or the printable page. Errors, and the OPTIONS description,
    are always JSON."""

    lp_readable = True
    renderer_classes = [JSONRenderer, StatementCSVRenderer, TemplateHTMLRenderer]
    template_name = "settlements/statement.html"

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        if request.method == "OPTIONS":
            return JSONRenderer(), JSONRenderer.media_type
        self.format_kwarg = format_parameter(
            request, self.format_kwarg, formats=("json", "csv", "html")
        )
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        tags=["settlements"],
        parameters=[
            OpenApiParameter(
                "month",
                str,
                OpenApiParameter.PATH,
                description="the UTC month, YYYY-MM (years 1000 to 2999)",
                pattern=statements.MONTH_PATTERN,
            ),
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv", "html"],
                description="json (the default), csv or html; or ask by the Accept header",
            ),
        ],
        responses={
            (200, "application/json"): StatementOutputSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "text/html"): OpenApiTypes.STR,
            **{
                (status, "application/json"): response
                for status, response in error_responses(400, 401, 403, 404, 406, 503).items()
            },
        },
        description=(
            "One participant's statement for one UTC month: its participant-month (the "
            "high-water mark and the platform's share across its symbols, SPEC Part B.21), "
            "its settlements of the month with every figure, each symbol's part of the share "
            "(allocated pro rata to positive gross: each exact part rounded down to 1e-8, the "
            "quanta left one each to the largest remainders, ties to the first symbol "
            "alphabetically; the parts sum to the share exactly) and their totals, and per "
            "symbol the month's fills (count, "
            "buy/sell, volume, fees, realised PnL), funding and Q-scores (mean daily "
            "Q-score and uptime, days, days the SLA was met). Money is USDT as decimal "
            "strings. An lp may read only its own participant's.\n\n"
            "`?format=csv` (or `Accept: text/csv`) answers an attachment "
            "`statement-<short_id>-<YYYY-MM>.csv`: per part (statement, settlements, "
            "participant_month, totals, fills, funding, qscores) a row naming it, a header "
            "row and its rows, "
            "the parts separated by an empty row. `?format=html` (or `Accept: text/html`) "
            "answers a printable page. Errors are always the JSON error body; a bad month "
            "is a 400 naming `month`, an unknown format one naming `format`."
        ),
    )
    def get(self, request: Request, participant_id: str, month: str) -> Response:
        require_own_participant(request, participant_id)
        first = statements.month_parse(month)
        participant = participant_get(participant_id=str(participant_id))
        statement = statements.statement_get(participant=participant, first=first)
        response = Response(StatementOutputSerializer(statement).data)
        if request.accepted_renderer.format == StatementCSVRenderer.format:
            filename = f"statement-{participant.short_id}-{statement.month}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# --- the payout file ----------------------------------------------------------------


class PayoutCSVRenderer(CSVRenderer):
    """The payout file as it is written by settlements/payouts.py."""

    def text(self, data: Any) -> str:
        return str(data)


class SettlementPayoutsApi(JsonErrorsMixin, APIView):
    """Always CSV (whatever the Accept header says); errors are the JSON error body."""

    read_roles = FINANCE_ONLY
    renderer_classes = [PayoutCSVRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        if request.method == "OPTIONS":  # the route's description, not a payout file
            return JSONRenderer(), JSONRenderer.media_type
        return PayoutCSVRenderer(), PayoutCSVRenderer.media_type

    @extend_schema(
        tags=["settlements"],
        parameters=[
            OpenApiParameter(
                "month",
                str,
                description="the UTC month, YYYY-MM (years 1000 to 2999); every month when "
                "left out",
                pattern=statements.MONTH_PATTERN,
            ),
            OpenApiParameter(
                "state",
                str,
                enum=[str(s) for s in payouts.PAYABLE_STATES],
                description="APPROVED (the default): to pay; FAILED: transfers to retry",
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            **{
                (status, "application/json"): response
                for status, response in error_responses(400, 401, 403, 503).items()
            },
        },
        description=(
            "The payout file for finance: one CSV row per participant-month with "
            "settlements in the state asked for (APPROVED by default), oldest month first, "
            "then by participant short id. Columns: "
            + ", ".join(f"`{c}`" for c in payouts.HEADER)
            + ". `symbols` and `settlement_ids` are `;`-separated; `gross_usdt`, "
            "`platform_share_usdt` and `amount_usdt` are the exact sums (8 places, plain "
            "notation) of those settlements' gross, share and net; `amount_usdt` is what "
            "the participant is paid (negative for a month whose net is a loss: nothing to "
            "pay); `currency` is USDT. A text a spreadsheet would run as a formula is quoted "
            "with `'`. Answered as an attachment `payouts[-YYYY-MM][-failed].csv`. Finance "
            "only; errors are the JSON error body (a bad month is a 400 naming `month`)."
        ),
    )
    def get(self, request: Request) -> Response:
        month = request.query_params.get("month")
        first = statements.month_parse(month) if month is not None else None
        state = request.query_params.get("state", SettlementState.APPROVED)
        if state not in payouts.PAYABLE_STATES:
            raise ValidationError({"state": ["must be APPROVED or FAILED"]})
        lines = payouts.payout_lines(first=first, state=state)
        response = Response(payouts.payout_csv(lines))
        filename = payouts.payout_filename(first=first, state=state)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

from django.urls import path

from settlements.api import views

urlpatterns = [
    path("settlements", views.SettlementListApi.as_view(), name="settlement-list"),
    path(
        "settlements/pending", views.SettlementPendingListApi.as_view(), name="settlement-pending"
    ),
    path(
        "settlements/payouts.csv", views.SettlementPayoutsApi.as_view(), name="settlement-payouts"
    ),
    path(
        "settlements/<uuid:settlement_id>",
        views.SettlementDetailApi.as_view(),
        name="settlement-detail",
    ),
    path(
        "settlements/<uuid:settlement_id>/approve",
        views.SettlementApproveApi.as_view(),
        name="settlement-approve",
    ),
    path(
        "settlements/<uuid:settlement_id>/reject",
        views.SettlementRejectApi.as_view(),
        name="settlement-reject",
    ),
    path(
        "settlements/<uuid:settlement_id>/recalculate",
        views.SettlementRecalculateApi.as_view(),
        name="settlement-recalculate",
    ),
    path(
        "settlements/<uuid:settlement_id>/mark-settled",
        views.SettlementMarkSettledApi.as_view(),
        name="settlement-mark-settled",
    ),
    path(
        "settlements/<uuid:settlement_id>/mark-failed",
        views.SettlementMarkFailedApi.as_view(),
        name="settlement-mark-failed",
    ),
    path(
        "participants/<uuid:participant_id>/statements/<str:month>",
        views.StatementApi.as_view(),
        name="participant-statement",
    ),
]

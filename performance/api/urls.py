from django.urls import path

from performance.api import views

urlpatterns = [
    path("performance/leaderboard", views.LeaderboardApi.as_view(), name="performance-leaderboard"),
    path(
        "performance/symbol/<symbol:symbol>",
        views.PerformanceSymbolApi.as_view(),
        name="performance-symbol",
    ),
    path(
        "performance/<uuid:participant_id>",
        views.PerformanceParticipantApi.as_view(),
        name="performance-participant",
    ),
]

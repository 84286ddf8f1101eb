from django.urls import path

from trading.api import views

urlpatterns = [
    path("mm-orders", views.MMOrderListApi.as_view(), name="mm-order-list"),
    path("mm-orders/<symbol:symbol>", views.MMOrderSymbolListApi.as_view(), name="mm-order-symbol"),
    path(
        "mm-orders/<symbol:symbol>/breakdown",
        views.MMOrderBreakdownApi.as_view(),
        name="mm-order-breakdown",
    ),
    path("mm-fills", views.MMFillListApi.as_view(), name="mm-fill-list"),
    path("mm-fills/<symbol:symbol>", views.MMFillSymbolListApi.as_view(), name="mm-fill-symbol"),
    path(
        "mm-fills/<symbol:symbol>/summary", views.MMFillSummaryApi.as_view(), name="mm-fill-summary"
    ),
    path(
        "mm-analytics/overview", views.AnalyticsOverviewApi.as_view(), name="mm-analytics-overview"
    ),
    path("mm-analytics/hourly", views.AnalyticsHourlyApi.as_view(), name="mm-analytics-hourly"),
    path(
        "mm-analytics/<symbol:symbol>/metrics",
        views.AnalyticsSymbolMetricsApi.as_view(),
        name="mm-analytics-metrics",
    ),
]

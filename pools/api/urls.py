from django.urls import path

from pools.api import views

urlpatterns = [
    path("pools", views.PoolListCreateApi.as_view(), name="pool-list"),
    path("pools/status", views.PoolStatusListApi.as_view(), name="pool-status-list"),
    path("pools/<symbol:symbol>", views.PoolDetailApi.as_view(), name="pool-detail"),
    path("pools/<symbol:symbol>/enable", views.PoolEnableApi.as_view(), name="pool-enable"),
    path("pools/<symbol:symbol>/pause", views.PoolPauseApi.as_view(), name="pool-pause"),
    path("pools/<symbol:symbol>/resume", views.PoolResumeApi.as_view(), name="pool-resume"),
    path("pools/<symbol:symbol>/unwind", views.PoolUnwindApi.as_view(), name="pool-unwind"),
    path("pools/<symbol:symbol>/status", views.PoolStatusApi.as_view(), name="pool-status"),
    path("pools/<symbol:symbol>/members", views.MemberListApi.as_view(), name="member-list"),
    path(
        "pools/<symbol:symbol>/members/<int:member_id>",
        views.MemberDetailApi.as_view(),
        name="member-detail",
    ),
    path("mm/emergency/kill", views.EmergencyKillApi.as_view(), name="emergency-kill"),
    path("mm/emergency/flatten", views.EmergencyFlattenApi.as_view(), name="emergency-flatten"),
    path("mm/reset", views.ResetApi.as_view(), name="mm-reset"),
    path("mm/status", views.MMStatusApi.as_view(), name="mm-status"),
]

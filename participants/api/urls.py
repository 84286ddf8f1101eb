from django.urls import path

from participants.api import views

urlpatterns = [
    path("participants", views.ParticipantListApi.as_view(), name="participant-list"),
    path(
        "participants/<uuid:participant_id>",
        views.ParticipantDetailApi.as_view(),
        name="participant-detail",
    ),
    path(
        "participants/<uuid:participant_id>/activate",
        views.ParticipantActivateApi.as_view(),
        name="participant-activate",
    ),
    path(
        "participants/<uuid:participant_id>/suspend",
        views.ParticipantSuspendApi.as_view(),
        name="participant-suspend",
    ),
    path(
        "participants/<uuid:participant_id>/terminate",
        views.ParticipantTerminateApi.as_view(),
        name="participant-terminate",
    ),
    path(
        "participants/<uuid:participant_id>/memberships",
        views.ParticipantMembershipsApi.as_view(),
        name="participant-memberships",
    ),
]

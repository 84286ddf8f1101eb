"""Fixtures for the admin panel: clients on the admin port, logged in as a
superuser or as staff users holding the ops, finance or viewer role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from common.auth import Role
from common.management.commands.bootstrap_admin import groups_ensure

PanelClientFactory = Callable[..., Client]


class PanelClient(Client):
    """A test Client used like a browser on the panel: every request arrives on
    the admin port (the SERVER_PORT the routing middleware reads) unless it
    names another, and redirects are followed, so each page shows (and
    consumes) the messages of the request that led to it."""

    def __init__(self, port: str, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.port = port

    def generic(self, *args: Any, **extra: Any) -> Any:
        extra.setdefault("SERVER_PORT", self.port)
        return super().generic(*args, **extra)

    def get(self, path: str, data: Any = None, follow: bool = True, **extra: Any) -> Any:
        return super().get(path, data, follow, **extra)

    def post(self, path: str, data: Any = None, follow: bool = True, **extra: Any) -> Any:
        return super().post(path, data, follow=follow, **extra)


@pytest.fixture(autouse=True)
def role_groups(db: None) -> dict[Role, Group]:
    return groups_ensure()


@pytest.fixture
def panel_client(settings) -> PanelClientFactory:
    """panel_client(user) -> a test Client on ADMIN_PORT, logged in as user."""

    def make(user: User | None = None) -> Client:
        client = PanelClient(str(settings.ADMIN_PORT))
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def staff_user(role_groups: dict[Role, Group]) -> Callable[..., User]:
    def make(username: str, *roles: Role) -> User:
        user = User.objects.create_user(username, password="unused-pw", is_staff=True)
        user.groups.set([role_groups[role] for role in roles])
        return user

    return make


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("ada-admin", "", "unused-pw")


@pytest.fixture
def admin_client(panel_client: PanelClientFactory, superuser: User) -> Client:
    return panel_client(superuser)


@pytest.fixture
def ops_client(panel_client: PanelClientFactory, staff_user) -> Client:
    return panel_client(staff_user("olga-ops", Role.OPS))


@pytest.fixture
def finance_client(panel_client: PanelClientFactory, staff_user) -> Client:
    return panel_client(staff_user("fred-finance", Role.FINANCE))


@pytest.fixture
def viewer_client(panel_client: PanelClientFactory, staff_user) -> Client:
    return panel_client(staff_user("vic-viewer", Role.VIEWER))

"""`manage.py bootstrap_admin`: the role groups and the first superuser, idempotently."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def _bootstrap(*args: str) -> str:
    out = StringIO()
    call_command("bootstrap_admin", *args, stdout=out)
    return out.getvalue()


def _password_printed(output: str) -> str:
    return next(
        line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("password: ")
    )


def test_creates_the_groups_and_a_superuser_with_a_generated_password(monkeypatch):
    monkeypatch.delenv("MMS_ADMIN_USER", raising=False)
    monkeypatch.delenv("MMS_ADMIN_PASSWORD", raising=False)
    Group.objects.all().delete()

    output = _bootstrap()

    assert "username: admin" in output
    user = User.objects.get(username="admin")
    assert user.is_superuser
    assert user.is_staff
    password = _password_printed(output)
    assert len(password) >= 20
    assert user.check_password(password)
    assert sorted(Group.objects.values_list("name", flat=True)) == ["finance", "ops", "viewer"]
    ops = set(Group.objects.get(name="ops").permissions.values_list("codename", flat=True))
    assert {"change_poolconfig", "add_poolmember", "change_participant", "view_mmfill"} <= ops
    viewer = set(Group.objects.get(name="viewer").permissions.values_list("codename", flat=True))
    assert "view_settlement" in viewer
    assert all(codename.startswith("view_") for codename in viewer)


def test_is_idempotent_and_keeps_the_password_unless_asked(monkeypatch):
    monkeypatch.setenv("MMS_ADMIN_USER", "root-ops")
    monkeypatch.setenv("MMS_ADMIN_PASSWORD", "first-Password-1")
    _bootstrap()
    permissions = {g.name: set(g.permissions.all()) for g in Group.objects.all()}

    monkeypatch.setenv("MMS_ADMIN_PASSWORD", "second-Password-2")
    output = _bootstrap()

    assert "superuser root-ops exists; password unchanged" in output
    assert "password: " not in output
    assert User.objects.filter(username="root-ops").count() == 1
    assert User.objects.get(username="root-ops").check_password("first-Password-1")
    assert {g.name: set(g.permissions.all()) for g in Group.objects.all()} == permissions

    output = _bootstrap("--reset-password")
    assert "password: second-Password-2" in output
    assert User.objects.get(username="root-ops").check_password("second-Password-2")


def test_the_bootstrapped_superuser_can_log_in_to_the_panel(monkeypatch, panel_client):
    monkeypatch.setenv("MMS_ADMIN_USER", "admin")
    monkeypatch.delenv("MMS_ADMIN_PASSWORD", raising=False)
    password = _password_printed(_bootstrap())
    client = panel_client()
    response = client.post("/login/?next=/", {"username": "admin", "password": password})
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert "Pools" in response.content.decode()

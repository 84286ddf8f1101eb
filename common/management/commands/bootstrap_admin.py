"""`manage.py bootstrap_admin`: the admin panel's role groups and first superuser.

Idempotent. The groups ops, finance and viewer (SPEC Part B.12) get exactly
the model permissions below on every run. The superuser is named by
MMS_ADMIN_USER (default "admin"); its password comes from MMS_ADMIN_PASSWORD
or is generated and printed once. An existing user keeps its password unless
--reset-password is given.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q

from common.auth import Role

# (app_label, model_name) of every model the panel shows.
PANEL_MODELS = (
    ("pools", "poolconfig"),
    ("pools", "poolmember"),
    ("pools", "flattenrequest"),
    ("participants", "participant"),
    ("participants", "participantterms"),
    ("settlements", "settlement"),
    ("trading", "mmorder"),
    ("trading", "mmfill"),
    ("trading", "mmfundingpayment"),
    ("performance", "performancedaily"),
    ("common", "auditlog"),
    ("common", "outboxevent"),
)
VIEW_ALL = tuple((app, f"view_{model}") for app, model in PANEL_MODELS)

# Everyone sees everything; ops edit pools, members and participants. Finance
# acts on settlements through lifecycle actions, which check the role itself
# (the figures are never edited, so no change permission is needed).
ROLE_PERMISSIONS: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.VIEWER: VIEW_ALL,
    Role.FINANCE: VIEW_ALL,
    Role.OPS: (
        *VIEW_ALL,
        ("pools", "add_poolconfig"),
        ("pools", "change_poolconfig"),
        ("pools", "delete_poolconfig"),
        ("pools", "add_poolmember"),
        ("pools", "change_poolmember"),
        ("pools", "delete_poolmember"),
        ("participants", "add_participant"),
        ("participants", "change_participant"),
    ),
}


def groups_ensure() -> dict[Role, Group]:
    """Creates the role groups if missing and sets their permissions."""
    groups: dict[Role, Group] = {}
    for role, wanted in ROLE_PERMISSIONS.items():
        query = Q(pk__in=[])
        for app_label, codename in wanted:
            query |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(query))
        if len(permissions) != len(wanted):
            found = {(p.content_type.app_label, p.codename) for p in permissions}
            missing = sorted(set(wanted) - found)
            raise CommandError(f"permissions missing (run migrate first): {missing}")
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set(permissions)
        groups[role] = group
    return groups


class Command(BaseCommand):
    help = "Create the admin panel's role groups (ops, finance, viewer) and a superuser."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="set the existing superuser's password again (from MMS_ADMIN_PASSWORD or new)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("MMS_ADMIN_USER", "").strip() or "admin"
        given = os.environ.get("MMS_ADMIN_PASSWORD", "")
        password = given or secrets.token_urlsafe(18)
        user_model = get_user_model()
        with transaction.atomic():
            groups = groups_ensure()
            self.stdout.write(f"groups: {', '.join(sorted(g.name for g in groups.values()))}")
            user = user_model._default_manager.filter(
                **{user_model.USERNAME_FIELD: username}
            ).first()
            if user is None:
                user_model._default_manager.db_manager().create_superuser(
                    **{user_model.USERNAME_FIELD: username}, email="", password=password
                )
                self.stdout.write(f"created superuser {username}")
            elif options["reset_password"]:
                user.set_password(password)
                user.is_active = user.is_staff = user.is_superuser = True
                user.save()
                self.stdout.write(f"reset the password of superuser {username}")
            else:
                self.stdout.write(
                    f"superuser {username} exists; password unchanged "
                    "(use --reset-password to set a new one)"
                )
                return
        self.stdout.write(f"username: {username}")
        self.stdout.write(f"password: {password}")

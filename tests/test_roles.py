"""The role groups hold every permission tracksop.roles names for them: after
migrate (which built the test database) and after a flush, which empties every
table and sends post_migrate, as pytest-django does after each transactional
test. tracksop's own app config runs the sync on that signal."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from tracksop.roles import ROLE_PERMISSIONS


def granted() -> dict[str, set[str]]:
    return {
        group.name: {
            f"{perm.content_type.app_label}.{perm.codename}"
            for perm in group.permissions.select_related("content_type")
        }
        for group in Group.objects.prefetch_related("permissions")
    }


def named() -> dict[str, set[str]]:
    return {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()}


@pytest.mark.django_db
def test_after_migrate_each_role_has_every_permission_it_names() -> None:
    assert granted() == named()


@pytest.mark.django_db(transaction=True)
def test_after_a_flush_each_role_has_every_permission_it_names_again() -> None:
    call_command("flush", interactive=False, verbosity=0)
    assert granted() == named()

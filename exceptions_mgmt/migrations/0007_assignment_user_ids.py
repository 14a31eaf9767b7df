"""Assignments in the history name the assignee by user id, not by login
(a login can change; the id cannot). Rows whose login matches no user keep it:
the history shows it as it was."""

from django.conf import settings
from django.db import migrations

BATCH = 1000


def _convert(apps, key_field, value_field, wanted):
    Change = apps.get_model("exceptions_mgmt", "ExceptionChange")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    rows = [
        change
        for change in Change.objects.filter(action="assigned").only("id", "data")
        if isinstance(change.data.get("to"), wanted)
    ]
    known = dict(
        User.objects.filter(
            **{f"{key_field}__in": {change.data["to"] for change in rows}}
        ).values_list(key_field, value_field)
    )
    changed = []
    for change in rows:
        if change.data["to"] in known:
            change.data["to"] = known[change.data["to"]]
            changed.append(change)
    Change.objects.bulk_update(changed, ["data"], batch_size=BATCH)


def logins_to_ids(apps, schema_editor):
    _convert(apps, "username", "id", str)


def ids_to_logins(apps, schema_editor):
    _convert(apps, "id", "username", int)


class Migration(migrations.Migration):
    dependencies = [
        ("exceptions_mgmt", "0006_change_action_choices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]
    operations = [migrations.RunPython(logins_to_ids, ids_to_logins)]

from datetime import timedelta

from django.db import migrations

# Per severity: (when, after, level). A supervisor edits them in the admin.
DEFAULT_RULES = {
    "low": [("unresolved", timedelta(hours=72), 1)],
    "medium": [
        ("unacknowledged", timedelta(hours=4), 1),
        ("unresolved", timedelta(hours=48), 2),
    ],
    "high": [
        ("unacknowledged", timedelta(hours=1), 1),
        ("unresolved", timedelta(hours=24), 2),
    ],
    "critical": [
        ("unacknowledged", timedelta(minutes=15), 1),
        ("unresolved", timedelta(hours=4), 2),
    ],
}


def add_rules(apps, schema_editor):
    Rule = apps.get_model("exceptions_mgmt", "EscalationRule")
    for severity, rules in DEFAULT_RULES.items():
        for when, after, level in rules:
            Rule.objects.get_or_create(
                severity=severity, when=when, level=level, defaults={"after": after}
            )


class Migration(migrations.Migration):
    dependencies = [("exceptions_mgmt", "0001_initial")]
    operations = [migrations.RunPython(add_rules, migrations.RunPython.noop)]

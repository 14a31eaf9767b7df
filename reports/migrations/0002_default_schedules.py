"""The weekly and monthly schedules are on by default, to supervisors and
managers (the role groups tracksop's migration creates)."""

from django.db import migrations

ROLES = ("Supervisor", "Manager")


def create(apps, schema_editor):
    ReportSchedule = apps.get_model("reports", "ReportSchedule")
    Group = apps.get_model("auth", "Group")
    groups = [Group.objects.get_or_create(name=name)[0] for name in ROLES]
    for kind in ("weekly", "monthly"):
        schedule, created = ReportSchedule.objects.get_or_create(kind=kind)
        if created:
            schedule.recipient_groups.set(groups)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
        ("tracksop", "0002_role_groups"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]

from django.db import migrations

from tracksop.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("tracksop", "0001_initial"),
        ("shipments", "0002_postgres_search_and_append_only"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]

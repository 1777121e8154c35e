"""Every deployment starts with the dataset group `default`."""

from django.db import migrations


def create_default_group(apps, schema_editor):
    apps.get_model("catalog", "DatasetGroup").objects.get_or_create(name="default")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(create_default_group, migrations.RunPython.noop)]

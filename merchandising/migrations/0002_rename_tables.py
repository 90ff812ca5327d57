"""The moved tables get merchandising's names, and the drafts' content types (with the staff permissions
that point at them) follow, so a merchandiser who could review drafts still can."""

from django.db import migrations

MOVED = ("productcopydraft", "productcopydraftevent")


def move_content_types(apps, schema_editor, old="shop", new="merchandising"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_back(apps, schema_editor):
    move_content_types(apps, schema_editor, old="merchandising", new="shop")


class Migration(migrations.Migration):

    dependencies = [
        ('merchandising', '0001_initial'),
        ('shop', '0005_copy_drafts_moved_to_merchandising'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelTable(name='productcopydraft', table=None),
        migrations.AlterModelTable(name='productcopydraftevent', table=None),
        migrations.RunPython(move_content_types, move_back),
    ]

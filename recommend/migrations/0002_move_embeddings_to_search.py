"""ProductEmbedding moves to the search app without losing a row: the table is renamed here and the model
leaves this app's state; search/migrations/0001_initial.py adds it to the search app's state only."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('recommend', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='ProductEmbedding', table='search_productembedding'),
            ],
            state_operations=[
                migrations.DeleteModel(name='ProductEmbedding'),
            ],
        ),
    ]

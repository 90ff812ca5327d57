"""ProductEmbedding, moved from the recommend app: recommend's 0002 renamed the table, so this only adds the
model to the search app's state (no table is created, no row is copied)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('shop', '0001_initial'),
        ('recommend', '0002_move_embeddings_to_search'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='ProductEmbedding',
                    fields=[
                        ('product', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='shop.product')),
                        ('vector', models.BinaryField(help_text='float32, L2-normalised; null until first embedded.', null=True)),
                        ('dim', models.PositiveSmallIntegerField(default=0)),
                        ('text_hash', models.CharField(blank=True, help_text='Of the embedded text (unchanged: skipped).', max_length=40)),
                        ('model_version', models.CharField(blank=True, max_length=160)),
                        ('is_dirty', models.BooleanField(default=True)),
                        ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                    ],
                    options={
                        'indexes': [models.Index(condition=models.Q(('is_dirty', True)), fields=['is_dirty'], name='embedding_dirty')],
                    },
                ),
            ],
        ),
    ]

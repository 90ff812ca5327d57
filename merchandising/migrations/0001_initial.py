"""The copy drafts move from shop (issue #18): in the state only. The tables, their rows, indexes and
constraints stay as they are (db_table keeps shop's names here; 0002 renames them)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('shop', '0004_checkout_idempotency_outbox'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='ProductCopyDraft',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('description', 'Description'), ('marketing_line', 'Marketing line'), ('email_blurb', 'E-mail blurb')], max_length=16)),
                        ('tone', models.CharField(choices=[('neutral', 'Neutral'), ('friendly', 'Friendly'), ('premium', 'Premium'), ('playful', 'Playful'), ('technical', 'Technical')], default='neutral', max_length=12)),
                        ('length', models.CharField(choices=[('short', 'Short'), ('medium', 'Medium'), ('long', 'Long')], default='medium', max_length=8)),
                        ('engine', models.CharField(choices=[('model', 'Language model'), ('template', 'Template (no model)')], default='model', max_length=10)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('generating', 'Generating'), ('ready', 'Ready'), ('needs_review', 'Needs review'), ('failed', 'Failed'), ('accepted', 'Accepted (published)'), ('rejected', 'Rejected')], db_index=True, default='queued', max_length=14)),
                        ('text', models.TextField(blank=True, help_text='The draft as it stands (after any edits).')),
                        ('generated_text', models.TextField(blank=True, help_text='What the generator wrote, before any edits.')),
                        ('facts', models.JSONField(blank=True, default=dict, help_text='The facts the draft was grounded in.')),
                        ('flags', models.JSONField(blank=True, default=list, help_text='Fact-check findings: [{text, reason, kind}], empty when it passed.')),
                        ('error', models.TextField(blank=True)),
                        ('generator', models.CharField(blank=True, help_text='Which model (or the template) wrote it.', max_length=200)),
                        ('generation_seconds', models.FloatField(blank=True, null=True)),
                        ('new_tokens', models.PositiveIntegerField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('claimed_at', models.DateTimeField(blank=True, null=True)),
                        ('generated_at', models.DateTimeField(blank=True, null=True)),
                        ('decided_at', models.DateTimeField(blank=True, null=True)),
                        ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='copy_drafts', to='shop.product')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-pk'],
                        'db_table': 'shop_productcopydraft',
                    },
                ),
                migrations.CreateModel(
                    name='ProductCopyDraftEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('action', models.CharField(choices=[('requested', 'Requested'), ('generated', 'Generated'), ('failed', 'Generation failed'), ('edited', 'Edited'), ('accepted', 'Accepted and published'), ('rejected', 'Rejected')], max_length=10)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('generating', 'Generating'), ('ready', 'Ready'), ('needs_review', 'Needs review'), ('failed', 'Failed'), ('accepted', 'Accepted (published)'), ('rejected', 'Rejected')], help_text="The draft's status after the event.", max_length=14)),
                        ('text', models.TextField(blank=True, help_text="The draft's text after the event.")),
                        ('details', models.JSONField(blank=True, default=dict, help_text='e.g. the flags, the error, the text it replaced on the product.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('actor', models.ForeignKey(blank=True, help_text='Empty for the generator.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('draft', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='merchandising.productcopydraft')),
                    ],
                    options={
                        'ordering': ['created_at', 'pk'],
                        'db_table': 'shop_productcopydraftevent',
                    },
                ),
                migrations.AddIndex(
                    model_name='productcopydraft',
                    index=models.Index(fields=['product', 'kind', 'status'], name='copydraft_product_kind'),
                ),
            ],
        ),
    ]

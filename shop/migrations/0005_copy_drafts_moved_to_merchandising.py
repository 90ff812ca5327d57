"""The copy drafts now belong to merchandising (issue #18): removed from shop's state only, so their
tables and rows are kept (merchandising 0001 takes them over, 0002 renames the tables)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('shop', '0004_checkout_idempotency_outbox'),
        ('merchandising', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name='ProductCopyDraftEvent'),
                migrations.DeleteModel(name='ProductCopyDraft'),
            ],
        ),
    ]

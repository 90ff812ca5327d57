"""The stored, GIN-indexed full-text document of each product (PostgreSQL only), kept by triggers on shop's
product and category tables, so a keyword search reads an index instead of computing a tsvector per row.
The weights are those search/engine.py used per query: title and brand A, category B, bullets and description C.
"""

import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models

CREATE = """
CREATE TABLE search_productdocument (
    product_id bigint PRIMARY KEY,  -- no foreign key: Django's test flush truncates shop_product alone
    document tsvector
);
CREATE INDEX search_productdocument_gin ON search_productdocument USING GIN (document);

CREATE FUNCTION search_document_of(pid bigint) RETURNS tsvector LANGUAGE sql STABLE AS $$
    SELECT setweight(to_tsvector('english', coalesce(p.title, '')), 'A')
        || setweight(to_tsvector('english', coalesce(p.brand, '')), 'A')
        || setweight(to_tsvector('english', coalesce(c.name, '')), 'B')
        || setweight(to_tsvector('english', coalesce(p.features::text, '')), 'C')
        || setweight(to_tsvector('english', coalesce(p.description, '')), 'C')
    FROM shop_product p JOIN shop_category c ON c.id = p.category_id WHERE p.id = pid
$$;

CREATE FUNCTION search_product_document_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_productdocument (product_id, document) VALUES (NEW.id, search_document_of(NEW.id))
    ON CONFLICT (product_id) DO UPDATE SET document = EXCLUDED.document;
    RETURN NULL;
END $$;
CREATE TRIGGER search_product_document AFTER INSERT OR UPDATE OF title, brand, features, description, category_id
    ON shop_product FOR EACH ROW EXECUTE FUNCTION search_product_document_trigger();

CREATE FUNCTION search_product_deleted_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_productdocument WHERE product_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER search_product_deleted AFTER DELETE ON shop_product
    FOR EACH ROW EXECUTE FUNCTION search_product_deleted_trigger();

CREATE FUNCTION search_category_document_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_productdocument d SET document = search_document_of(d.product_id)
    FROM shop_product p WHERE p.id = d.product_id AND p.category_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER search_category_document AFTER UPDATE OF name ON shop_category
    FOR EACH ROW EXECUTE FUNCTION search_category_document_trigger();

INSERT INTO search_productdocument (product_id, document) SELECT id, search_document_of(id) FROM shop_product;
"""

DROP = """
DROP TRIGGER IF EXISTS search_category_document ON shop_category;
DROP TRIGGER IF EXISTS search_product_document ON shop_product;
DROP TRIGGER IF EXISTS search_product_deleted ON shop_product;
DROP FUNCTION IF EXISTS search_product_deleted_trigger();
DROP FUNCTION IF EXISTS search_category_document_trigger();
DROP FUNCTION IF EXISTS search_product_document_trigger();
DROP FUNCTION IF EXISTS search_document_of(bigint);
DROP TABLE IF EXISTS search_productdocument;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite (the demo) matches words without a document
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ('search', '0002_product_attributes'),
        ('shop', '0004_checkout_idempotency_outbox'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProductDocument',
            fields=[
                ('product', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='shop.product')),
                ('document', django.contrib.postgres.search.SearchVectorField(null=True)),
            ],
            options={
                'db_table': 'search_productdocument',
                'managed': False,
            },
        ),
        migrations.RunPython(create, drop),
    ]

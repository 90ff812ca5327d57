"""ProductEmbedding moved from recommend to search (SeparateDatabaseAndState): the table is renamed, every row
survives, and going back restores recommend's table."""

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from .factories import make_category, make_product

BEFORE = [("recommend", "0001_initial"), ("search", None)]


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _latest() -> list:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_embeddings_survive_the_move_to_the_search_app_and_back():
    product = make_product(make_category("TVs"), title="Samsung 65 inch OLED TV")
    vector = np.arange(4, dtype=np.float32).tobytes()
    try:
        _migrate(BEFORE)
        tables = connection.introspection.table_names()
        assert "recommend_productembedding" in tables and "search_productembedding" not in tables
        with connection.cursor() as cursor:
            # The save flagged the product already (an empty row): replace it with an embedded one.
            cursor.execute("DELETE FROM recommend_productembedding")
            cursor.execute(
                "INSERT INTO recommend_productembedding (product_id, vector, dim, text_hash, model_version, is_dirty,"
                " updated_at) VALUES (%s, %s, 4, 'abc', 'minilm', false, now())", [product.pk, vector])
        _migrate(_latest())
        from search.models import ProductEmbedding

        row = ProductEmbedding.objects.get(product_id=product.pk)
        assert (bytes(row.vector), row.dim, row.text_hash, row.model_version, row.is_dirty) == (
            vector, 4, "abc", "minilm", False)
        assert "recommend_productembedding" not in connection.introspection.table_names()
        _migrate(BEFORE)  # and back: recommend's table again, with the row
        with connection.cursor() as cursor:
            cursor.execute("SELECT dim, text_hash FROM recommend_productembedding WHERE product_id = %s",
                           [product.pk])
            assert cursor.fetchone() == (4, "abc")
    finally:
        _migrate(_latest())

"""Product embeddings (content vectors for semantic search and related items), owned by the search app.

Shop rows are referenced by string ("shop.Product"); this app never imports shop.models.
"""

from django.contrib.postgres.search import SearchVectorField
from django.db import models


class ProductEmbedding(models.Model):
    """The embedding of one product's text, with a dirty flag: a product changed in the admin is
    flagged by a receiver and re-embedded by a task within seconds (and by a minutely sweep)."""

    product = models.OneToOneField("shop.Product", primary_key=True, related_name="+", on_delete=models.CASCADE)
    vector = models.BinaryField(null=True, help_text="float32, L2-normalised; null until first embedded.")
    dim = models.PositiveSmallIntegerField(default=0)
    text_hash = models.CharField(max_length=40, blank=True, help_text="Of the embedded text (unchanged: skipped).")
    model_version = models.CharField(max_length=160, blank=True)
    is_dirty = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["is_dirty"], name="embedding_dirty", condition=models.Q(is_dirty=True))]

    def __str__(self) -> str:
        return f"Embedding of product {self.product_id}{' (dirty)' if self.is_dirty else ''}"


class ProductAttributes(models.Model):
    """Attributes parsed once from a product's title and bullets (search/attributes.py), so a chip filters
    exactly what it says with an indexed lookup. Rewritten whenever the product is saved."""

    product = models.OneToOneField("shop.Product", primary_key=True, related_name="+", on_delete=models.CASCADE)
    resolution = models.CharField(max_length=8, blank=True, db_index=True, help_text='"4k", "1080p", ... or blank')
    size_inches = models.DecimalField(max_digits=5, decimal_places=2, null=True, db_index=True)
    refresh_hz = models.PositiveSmallIntegerField(null=True)
    storage_gb = models.PositiveIntegerField(null=True)
    memory_gb = models.PositiveSmallIntegerField(null=True)
    tags = models.CharField(max_length=600, blank=True, help_text='Features and colours, "|wireless|black|".')

    class Meta:
        verbose_name_plural = "product attributes"

    def __str__(self) -> str:
        return f"Attributes of product {self.product_id}"


class ProductDocument(models.Model):
    """The product's full-text document, stored and GIN-indexed so a keyword search reads an index instead of
    building a tsvector per row per query. PostgreSQL only: kept by triggers on shop's product and category tables
    (search/migrations/0003_product_document.py); on SQLite (the demo) search matches words without it."""

    # No database constraint (Django's test flush truncates shop_product alone); a delete trigger removes the row.
    product = models.OneToOneField("shop.Product", primary_key=True, related_name="+", on_delete=models.DO_NOTHING,
                                   db_constraint=False)
    document = SearchVectorField(null=True)

    class Meta:
        managed = False  # created and filled by the migration's SQL, written only by the triggers
        db_table = "search_productdocument"

    def __str__(self) -> str:
        return f"Document of product {self.product_id}"

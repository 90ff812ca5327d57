"""Product embeddings (content vectors for related items and semantic search).

Shop rows are referenced by string ("shop.Product"); this app never imports shop.models.
"""

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

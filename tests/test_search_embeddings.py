"""Product embeddings: the dirty flag, batch embedding, and index freshness after an admin edit."""

import numpy as np
import pytest
from django.urls import reverse

from search import embeddings
from search.models import ProductEmbedding

from .factories import make_category, make_product


def _vector(seed: int, dim: int = 384) -> bytes:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return (vector / np.linalg.norm(vector)).tobytes()


@pytest.mark.django_db
def test_a_saved_product_is_flagged_and_the_text_covers_what_shoppers_search():
    category = make_category("Headphones", parent=make_category("Audio"))
    product = make_product(category=category, title="Quiet Comfort Headphones", brand="Bose",
                           features=["Noise cancelling", "24 h battery"])
    row = ProductEmbedding.objects.get(product=product)
    assert row.is_dirty and row.vector is None
    text = embeddings.product_text(product)
    assert "Quiet Comfort Headphones" in text and "Brand: Bose" in text and "Audio > Headphones" in text
    assert "Noise cancelling" in text
    ProductEmbedding.objects.filter(pk=row.pk).update(is_dirty=False)
    product.title = "Quiet Comfort Ultra Headphones"
    product.save()
    assert ProductEmbedding.objects.get(product=product).is_dirty


@pytest.mark.django_db
def test_index_holds_active_products_and_follows_changes_incrementally():
    category = make_category("Speakers")
    a, b, c = (make_product(category=category, title=f"Speaker {n}") for n in "abc")
    for product, seed in ((a, 1), (b, 2), (c, 3)):
        ProductEmbedding.objects.filter(product=product).update(vector=_vector(seed), dim=384, is_dirty=False)
    embeddings.reset_index()
    index = embeddings.product_index()
    assert sorted(index.ids.tolist()) == sorted([a.pk, b.pk, c.pk])
    nearest = embeddings.similar_products(a.pk, k=5)
    assert [pid for pid, _ in nearest] and a.pk not in [pid for pid, _ in nearest]

    # b now points where a points; c is retired. After the version bump the same process index
    # reflects both without a rebuild.
    ProductEmbedding.objects.filter(product=b).update(vector=_vector(1), dim=384)
    c.is_active = False
    c.save()
    ProductEmbedding.objects.filter(product=c).update(is_dirty=False)
    embeddings._bump_version()
    assert embeddings.product_index() is index
    assert c.pk not in index and b.pk in index
    assert embeddings.similar_products(a.pk, k=1)[0][0] == b.pk


@pytest.mark.slow
@pytest.mark.embeddings
@pytest.mark.django_db(transaction=True)
def test_an_admin_edit_is_re_embedded_by_the_task_within_the_request(admin_client):
    """Real MiniLM: the save in the admin queues the embedding task on commit; after it the
    product is found by meaning."""
    category = make_category("Headphones")
    make_product(category=category, title="Studio Monitor Headphones", brand="Sony")
    kettle = make_product(category=category, title="Electric Kettle 1.7 L", brand="Acme")
    embeddings.embed_dirty(everything=True)
    assert not ProductEmbedding.objects.filter(is_dirty=True).exists()
    query = embeddings.embed_query("wireless earbuds with noise cancelling")
    before = embeddings.product_index().search(query[None, :], k=1)[0][0][0]
    assert before != kettle.pk

    url = reverse("admin:shop_product_change", args=[kettle.pk])
    page = admin_client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(title="Noise cancelling wireless earbuds", features='["Active noise cancelling", "Bluetooth 5.3"]',
                brand="Acme")
    data = {key: value for key, value in data.items() if not isinstance(value, list | dict)}
    data["features"] = '["Active noise cancelling", "Bluetooth 5.3"]'
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]

    row = ProductEmbedding.objects.get(product=kettle)
    assert not row.is_dirty and row.vector is not None
    after = embeddings.product_index().search(query[None, :], k=1)[0][0][0]
    assert after == kettle.pk

"""The copy drafts moved from shop to merchandising (issue #18) without losing a row: drafts and their
history written under shop's migrations are there, with their links, after merchandising's."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("shop", "0004_checkout_idempotency_outbox"), ("merchandising", None)]


def migrate(targets):
    """Migrate to targets; the state of the models then (shop and what it needs, or everything at the end)."""
    MigrationExecutor(connection).migrate(targets)
    loader = MigrationExecutor(connection).loader
    if all(name for _, name in targets) and set(targets) == set(loader.graph.leaf_nodes()):
        return loader.project_state().apps
    auth = [n for n in loader.graph.leaf_nodes() if n[0] in ("auth", "contenttypes")]
    return loader.project_state([*auth, *(t for t in targets if t[1])]).apps


def everything():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def back_at_the_end():
    yield
    migrate(everything())  # the next tests need today's schema


@pytest.mark.django_db(transaction=True)
def test_drafts_and_their_history_survive_the_move(back_at_the_end):
    old = migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="merch-before-move")
    category = old.get_model("shop", "Category").objects.create(name="Audio", slug="audio-move")
    product = old.get_model("shop", "Product").objects.create(title="Acme Speaker", slug="acme-speaker-move",
                                                             brand="Acme", category=category, price="49.99")
    draft = old.get_model("shop", "ProductCopyDraft").objects.create(
        product=product, kind="description", status="needs_review", text="Acme Speaker, loud.",
        flags=[{"text": "loud", "reason": "x", "kind": "grounding"}], requested_by=user)
    old.get_model("shop", "ProductCopyDraftEvent").objects.create(draft=draft, action="generated",
                                                                 status="needs_review", text=draft.text)
    ct_old = old.get_model("contenttypes", "ContentType").objects.get_or_create(app_label="shop",
                                                                               model="productcopydraft")[0]

    new = migrate(everything())
    Draft = new.get_model("merchandising", "ProductCopyDraft")
    moved = Draft.objects.get(pk=draft.pk)
    assert (moved.product_id, moved.text, moved.flags, moved.requested_by_id) == (
        product.pk, "Acme Speaker, loud.", [{"text": "loud", "reason": "x", "kind": "grounding"}], user.pk)
    event = new.get_model("merchandising", "ProductCopyDraftEvent").objects.get(draft_id=draft.pk)
    assert event.action == "generated"
    assert Draft._meta.db_table == "merchandising_productcopydraft"
    assert "merchandising_productcopydraft" in connection.introspection.table_names()
    assert "shop_productcopydraft" not in connection.introspection.table_names()
    # The content type (and the staff permissions pointing at it) moved with the model.
    ct = new.get_model("contenttypes", "ContentType").objects.get(pk=ct_old.pk)
    assert (ct.app_label, ct.model) == ("merchandising", "productcopydraft")
    # A new draft gets the next id, not a clash with a moved one.
    assert Draft.objects.create(product_id=product.pk, kind="description").pk > draft.pk

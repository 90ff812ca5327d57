"""Product copy drafts through a real Celery worker (on the tiny generator): requested for two products,
written and fact-checked by the worker, nothing published until a merchandiser accepts; a redelivered
task does not write a draft twice."""

import subprocess

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from merchandising import services as copywriting
from merchandising.models import ProductCopyDraft
from shop.models import Product

from . import workers
from .factories import make_product, make_user
from .ml_tiny import make_tiny_generator

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="needs REDIS_URL and PostgreSQL"),
]
DONE = (ProductCopyDraft.Status.READY, ProductCopyDraft.Status.NEEDS_REVIEW)


@pytest.fixture
def copy_worker(tmp_path):
    """A worker whose model registry loads the tiny generator (AISLE_MODEL_GENERATOR overrides the path)."""
    tiny = make_tiny_generator(tmp_path / "generator")
    celery_app.control.purge()
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed with the process
    process: subprocess.Popen = workers.start_worker(name="copy", log=log, env={"AISLE_MODEL_GENERATOR": str(tiny)})
    ready = workers.wait_for(lambda: any("copy@" in name for reply in celery_app.control.ping(timeout=0.5) or []
                                         for name in reply), timeout=90)
    if not ready:
        workers.stop_worker(process)
        pytest.fail(f"the worker did not come up:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
    yield process
    workers.stop_worker(process)
    log.close()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_the_drafts_and_nothing_is_published_before_accept(copy_worker):
    merchandiser = make_user()
    products = [make_product(title="Acme Wireless Speaker", description="Published speaker text."),
                make_product(title="Acme Desk Lamp", description="Published lamp text.")]

    drafts = copywriting.request_drafts([p.pk for p in products], ProductCopyDraft.Kind.DESCRIPTION, "friendly",
                                        "short", requested_by=merchandiser)
    assert len(drafts) == 2

    def all_done() -> bool:
        return ProductCopyDraft.objects.filter(pk__in=[d.pk for d in drafts], status__in=DONE).count() == 2

    assert workers.wait_for(all_done, timeout=120, every=0.2), list(
        ProductCopyDraft.objects.values_list("status", "error"))
    for draft in ProductCopyDraft.objects.filter(pk__in=[d.pk for d in drafts]):
        assert draft.text and draft.generator.startswith("settings") and draft.facts["title"]
        assert (draft.status == ProductCopyDraft.Status.READY) == (draft.flags == [])
    assert sorted(Product.objects.values_list("description", flat=True)) == ["Published lamp text.",
                                                                             "Published speaker text."]

    # The broker delivers the task again: the worker leaves the written draft alone.
    first = ProductCopyDraft.objects.get(pk=drafts[0].pk)
    again = celery_app.send_task("merchandising.tasks.generate_copy_draft", args=[first.pk]).get(timeout=60)
    assert again == first.status
    assert first.events.filter(action="generated").count() == 1
    assert ProductCopyDraft.objects.get(pk=first.pk).text == first.text

    copywriting.accept_draft(first.pk, merchandiser)
    assert Product.objects.get(pk=first.product_id).description == first.text
    other = Product.objects.exclude(pk=first.product_id).get()
    assert other.description.startswith("Published")

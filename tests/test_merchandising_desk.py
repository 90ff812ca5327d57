"""The copy desk (issue #18): drafting never waits in the request (a background thread without a broker),
a batch for the products that need copy with a progress bar fed by a JSON endpoint, flagged words marked
in the draft, and the history kept through edit, accept and reject."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from merchandising import desk
from merchandising import services as copy
from merchandising.models import ProductCopyDraft
from ml.registry import registry

from .factories import make_product
from .ml_tiny import make_tiny_generator

Status = ProductCopyDraft.Status


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_superuser("desk", "desk@example.com", "pw-desk-123"))
    return client


def test_flagged_spans_find_each_flag_case_blind_and_merge_overlaps():
    text = "The Best TV. Best in class, with free shipping."
    flags = [{"text": "best", "reason": "superlative"}, {"text": "free shipping", "reason": "offer"},
             {"text": "Best in class", "reason": "sentence"}, {"text": "gone", "reason": "edited away"}]
    spans = desk.flagged_spans(text, flags)
    assert [text[a:b] for a, b, _ in spans] == ["Best", "Best in class", "free shipping"]
    assert spans[1][2] == "superlative; sentence"
    assert desk.flagged_spans("bestseller", [{"text": "best", "reason": "x"}]) == []  # whole words only


def test_words_are_marked_inside_an_unsupported_sentence():
    text = "Ok. The best lamp."
    flags = [{"text": "best", "reason": "superlative", "kind": "claim"},
             {"text": "The best lamp.", "reason": "not supported", "kind": "grounding"}]
    assert desk.highlight_segments(text, flags) == [("Ok. ", "", ""), ("The ", "", "not supported"),
                                                    ("best", "superlative", "not supported"),
                                                    (" lamp.", "", "not supported")]


def test_parse_ids_ignores_junk_and_caps_the_batch():
    assert desk.parse_ids("3,x,3,,1;2,5") == [3, 5]
    assert len(desk.parse_ids(",".join(map(str, range(1, 1000))))) == desk.MAX_BATCH


@pytest.mark.django_db
def test_flagged_words_are_marked_in_the_draft_and_the_text_stays_escaped(staff_client):
    product = make_product(title="Acme Lamp", features=["Warm light"])
    (draft,) = copy.request_drafts([product.pk], "description", engine="template")
    copy.generate_draft(draft.pk)
    copy.edit_draft(draft.pk, "The best <b>lamp</b>, with free shipping.")
    page = staff_client.get(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk])).content.decode()
    assert '<mark class="copy-flag" title="superlative not in the facts">best</mark>' in page
    assert '<mark class="copy-flag" title="offer not in the facts">free shipping</mark>' in page
    assert '<span class="copy-unsupported" title="not supported by the facts' in page  # the grounding check's
    assert "&lt;b&gt;lamp&lt;/b&gt;" in page and "<b>lamp</b>" not in page


@pytest.mark.django_db(transaction=True)
def test_draft_copy_for_the_products_that_need_it_runs_in_the_background_with_progress(staff_client, settings,
                                                                                        tmp_path):
    settings.AISLE_COPY_BACKGROUND_WHEN_EAGER = True  # no broker: the desk's background thread
    registry.configure(paths={"generator": str(make_tiny_generator(tmp_path / "generator"))})
    thin = [make_product(title=f"Thin Speaker {i}", description="") for i in range(3)]
    make_product(title="Rich Speaker", description=" ".join(["word"] * 40))
    page = staff_client.get(reverse("admin:merchandising_needs_copy")).content.decode()
    assert 'id="draft-thin"' in page and "the 3 products" in page

    response = staff_client.post(reverse("admin:merchandising_draft_thin"))
    assert response.status_code == 302 and reverse("admin:merchandising_batch") in response["Location"]
    drafts = list(ProductCopyDraft.objects.order_by("pk"))
    assert sorted(d.product_id for d in drafts) == sorted(p.pk for p in thin)
    batch = staff_client.get(response["Location"]).content.decode()
    assert '<progress id="copy-progress" max="3"' in batch and "js/copy-desk.js" in batch

    progress_url = f"{reverse('admin:merchandising_progress')}?ids={','.join(str(d.pk) for d in drafts)}"
    deadline = time.monotonic() + 120
    while True:
        state = staff_client.get(progress_url).json()
        if state["finished"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state["total"] == 3 and state["done"] == 3 and state["finished"]
    assert {d["status"] for d in state["drafts"]} <= {Status.READY, Status.NEEDS_REVIEW}
    # A second click while none is waiting queues new ones only for products without one in progress.
    assert staff_client.get(reverse("admin:merchandising_draft_thin")).status_code == 405


@pytest.mark.django_db
def test_the_progress_endpoint_needs_staff(client):
    response = client.get(reverse("admin:merchandising_progress"), {"ids": "1"})
    assert response.status_code == 302 and "login" in response["Location"]

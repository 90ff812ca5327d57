"""Product copy drafts (issues #8, #18; merchandising): the copy rules on crafted drafts, ml.grounding in
the fact check, output cleaning, the template baseline, bad input skipped with a reason, the draft life
cycle (request, generate on the tiny model, edit, accept, reject, history), review aspects from sentiment,
the "needs copy" list, and the admin pages. One slow test drafts with the real SmolLM2."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

import ml
from merchandising import services as copywriting
from merchandising.models import ProductCopyDraft, ProductCopyDraftEvent
from merchandising.services import CopyFacts, clean_output, fact_check, spec_flags, template_copy
from ml.inference import Generation
from ml.registry import registry
from shop.models import Product

from .factories import make_product, make_user
from .ml_tiny import make_tiny_generator

Status, Kind = ProductCopyDraft.Status, ProductCopyDraft.Kind
BRANDS = ["Samsung", "Sony", "LG", "Bose", "Dolby", "Brilliant", "Ring"]

TV = CopyFacts(
    title='Samsung 65" Class - QN90D Series - 4K UHD Neo QLED TV', brand="Samsung", category="Televisions",
    price=Decimal("1499.99"), compare_at_price=Decimal("1799.99"), discount_label="After $300 OFF",
    features=("Neural Quantum Processor 4K", "144Hz Refresh Rate", "Anti-Glare Screen", "16GB Storage",
              "Dolby Atmos Sound", "2-Year Warranty"),
    rating=Decimal("4.6"), review_count=900, loved_aspects=("picture",), complained_aspects=("remote",),
)
BATTERIES = CopyFacts(
    title="Duracell Coppertop Alkaline AA Batteries, 40-count", brand="Duracell",
    features=("POWER BOOST Ingredients", "Guaranteed For 12 Years In Storage", "#1 Trusted Battery Brand"),
    price=Decimal("20.99"),
)


@pytest.fixture(autouse=True)
def _drafts_in_the_request(settings):
    """Eager tasks run inside the test (not in the copy desk's background thread), so a test sees their result
    right after the request; tests/test_merchandising_desk.py covers the thread."""
    settings.AISLE_COPY_BACKGROUND_WHEN_EAGER = False


def check(text: str, facts: CopyFacts = TV) -> list[dict]:
    """The copy rules alone (numbers, prices, specs, claims, brands, names): the words they point at."""
    return spec_flags(text, facts, brands=BRANDS)


def full_check(text: str, facts: CopyFacts = TV) -> list[dict]:
    """The fact check drafts get: the copy rules, then ml.grounding sentence by sentence."""
    return fact_check(text, facts, brands=BRANDS)


def flagged(text: str, facts: CopyFacts = TV) -> list[str]:
    return [flag["text"] for flag in check(text, facts)]


# --- the fact check on crafted drafts -------------------------------------------------------------------


@pytest.mark.parametrize("draft", [
    "The Samsung QN90D brings a bright 4K picture with a 144Hz refresh rate and an anti-glare screen.",
    "Rated 4.6 out of 5 stars by 900 reviewers, with Dolby Atmos sound and a 2-year warranty.",
    "Now $1,499.99, after $300 off: that is 17% off the usual price.",
    "Meet the Neo QLED TV from Samsung. Brilliant picture, calm design.",  # "Brilliant" opens a sentence
])
def test_a_grounded_draft_passes(draft):
    assert check(draft) == []


@pytest.mark.parametrize(("draft", "bad"), [
    ("A 75-inch screen for the whole family.", '75-inch'),
    ("It refreshes at 120Hz for smooth sport.", "120Hz"),
    ("With 32GB of storage for your apps.", "32GB"),
    ("Includes 3 HDMI ports.", "3"),
    ("Backed by a 5-year warranty.", "5-year"),
    ("Up to 2000 nits of brightness.", "2000 nits"),
])
def test_an_invented_number_is_flagged(draft, bad):
    assert bad in flagged(draft)


@pytest.mark.parametrize("draft", ["Yours for $1,299.", "Only $1,499 today.", "Was $1,999.99.", "Save $400 now."])
def test_a_wrong_price_is_flagged(draft):
    flags = check(draft)
    assert [flag["kind"] for flag in flags] == ["price"], flags


@pytest.mark.parametrize("draft", [
    'A 65" screen.', "A 65-inch screen.", "A 65 inch screen.", "A 65\u201d screen.", "A 65 in. screen.",
    "16 GB of storage.", "16GB of storage.", "16-GB storage.", "A 144 Hz panel.", "A 144Hz panel.",
    "A two-year warranty.", "A 2 year warranty.", "$1,499.99 today.", "$1499.99 today.", "1,499.99 dollars today.",
    "$1799.99 before the discount.", "Save $300.", "4K UHD.", "Rated 4.6 stars.",
])
def test_unit_and_price_spellings_of_the_same_fact_pass(draft):
    assert check(draft) == []


@pytest.mark.parametrize("draft", [
    "The best TV for movie night.", "The #1 TV in America.", "Fully waterproof design.",
    "An award-winning picture.", "Satisfaction guaranteed.", "With free shipping on every order.",
    "Covered by a lifetime warranty.", "Clinically proven to reduce eye strain.", "Unbeatable value.",
    "The most advanced TV ever made.", "Brighter than any other TV.",
])
def test_an_invented_claim_is_flagged(draft):
    assert any(flag["kind"] == "claim" for flag in check(draft)), check(draft)


def test_a_claim_the_facts_make_passes():
    assert check("The #1 trusted battery brand, guaranteed for 12 years in storage.", BATTERIES) == []
    assert "guaranteed" not in flagged("Guaranteed for 40 years in storage.", BATTERIES)
    assert "40 years" in flagged("Guaranteed for 40 years in storage.", BATTERIES)


def test_another_brand_is_flagged_but_the_products_own_and_those_in_the_facts_are_not():
    flags = check("Sounds better than a Sony, and pairs with LG soundbars.")
    assert {(f["text"], f["kind"]) for f in flags} >= {("Sony", "brand"), ("LG", "brand")}
    assert check("Samsung and Dolby Atmos sound.") == []  # own brand; Dolby is in the bullets
    assert check("Put a ring light beside it.") == []  # the word, not the brand Ring


def test_invented_model_numbers_and_names_are_flagged():
    assert ("QN95Z", "spec") in {(f["text"], f["kind"]) for f in check("The QN95Z panel shines.")}
    assert ("Nexarion", "name") in {(f["text"], f["kind"]) for f in check("Powered by the Nexarion chip.")}


def test_headline_capitals_are_not_names_and_a_claim_is_flagged_once():
    assert check("The Ultimate Gaming Solution: Samsung Neo QLED TV, Tonight's Deal.") == []
    flags = check("Meet the Best Samsung TV.")
    assert [(f["text"].lower(), f["kind"]) for f in flags] == [("best", "claim")]


def test_the_generator_is_kept_from_claims_the_facts_do_not_make():
    avoided = copywriting.words_to_avoid(TV)
    assert {"unparalleled", "best", "waterproof", "guaranteed"} <= set(avoided)
    assert "guaranteed" not in copywriting.words_to_avoid(BATTERIES)  # "Guaranteed For 12 Years In Storage"


def test_praising_an_aspect_shoppers_complain_about_is_flagged():
    flags = check("The remote is a joy to use.")
    assert flags and flags[0]["kind"] == "aspect" and "complain" in flags[0]["reason"]


def test_clean_output_strips_preamble_markdown_quotes_and_cuts_at_a_sentence_end():
    raw = 'Sure! Here is your description:\n\n**"A bright TV."** It has a calm design.\n- It is easy to set up and'
    assert clean_output(raw, max_words=40) == "A bright TV. It has a calm design."
    assert clean_output("One two three four five six seven eight nine ten", max_words=4) == "One two three four."
    assert clean_output("First sentence here. Second sentence is much longer than allowed.", 5) == \
        "First sentence here."


@pytest.mark.parametrize("kind", Kind.values)
@pytest.mark.parametrize("tone", ProductCopyDraft.Tone.values)
@pytest.mark.parametrize("length", ProductCopyDraft.Length.values)
def test_the_template_baseline_always_passes_the_check(kind, tone, length):
    for facts in (TV, BATTERIES):
        text = template_copy(facts, kind, tone, length)
        assert text and full_check(text, facts) == [], text


def test_prompts_ground_the_model_in_the_facts_and_leave_evergreen_copy_without_prices():
    messages = copywriting.build_messages(TV, Kind.DESCRIPTION, "premium", "short")
    assert messages[0]["role"] == "system" and "Do not add any number" in messages[0]["content"]
    user = messages[1]["content"]
    assert "<facts>" in user and "144Hz Refresh Rate" in user and "two sentences" in user and "refined" in user
    assert "1,499.99" not in user  # descriptions stay valid when the price changes
    assert "$1,499.99" in copywriting.build_messages(TV, Kind.EMAIL_BLURB, "friendly", "long")[1]["content"]
    assert "remote" not in user  # complaints are checked against, never suggested


# --- the life cycle --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_generator_path(tmp_path_factory):
    return make_tiny_generator(tmp_path_factory.mktemp("copy") / "generator")


@pytest.fixture
def tiny_model(tiny_generator_path):
    """Point the process-wide registry at the tiny generator (conftest restores it)."""
    registry.configure(paths={"generator": str(tiny_generator_path)})
    return tiny_generator_path


@pytest.mark.django_db
def test_request_drafts_queues_one_draft_per_product_and_not_twice(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("shop.services.queue_task", lambda name, args: sent.append(args[0]))
    user = make_user()
    a, b = make_product(), make_product()
    with django_capture_on_commit_callbacks(execute=True):
        drafts = copywriting.request_drafts([a.pk, b.pk, a.pk, 999_999], Kind.DESCRIPTION, "friendly", "short",
                                            requested_by=user)
    assert sorted(d.product_id for d in drafts) == sorted([a.pk, b.pk])
    assert {d.status for d in drafts} == {Status.QUEUED}
    assert sorted(sent) == sorted(d.pk for d in drafts)
    event = ProductCopyDraftEvent.objects.filter(draft=drafts[0]).get()
    assert event.action == "requested" and event.actor == user and event.details["tone"] == "friendly"
    # A second request while they are queued adds nothing; another kind is its own draft.
    assert copywriting.request_drafts([a.pk], Kind.DESCRIPTION) == []
    assert len(copywriting.request_drafts([a.pk], Kind.MARKETING_LINE)) == 1
    with pytest.raises(copywriting.ValidationError):
        copywriting.request_drafts([a.pk], Kind.DESCRIPTION, tone="sarcastic")


@pytest.mark.django_db
def test_generate_draft_on_the_tiny_model_stores_a_checked_draft_beside_the_product(tiny_model):
    product = make_product(description="The published text.")
    (draft,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION, "neutral", "short")
    status = copywriting.generate_draft(draft.pk)
    draft.refresh_from_db()
    product.refresh_from_db()
    assert status == draft.status and draft.status in (Status.READY, Status.NEEDS_REVIEW)
    assert draft.text and draft.text == draft.generated_text and len(draft.text.split()) <= 54
    assert (draft.status == Status.READY) == (draft.flags == [])
    assert draft.facts["title"] == product.title and draft.generator.endswith("generator")
    assert draft.new_tokens and draft.generation_seconds is not None
    assert product.description == "The published text."  # nothing published before acceptance
    # Redelivered: not generated twice.
    assert copywriting.generate_draft(draft.pk) == draft.status
    assert list(draft.events.values_list("action", flat=True)) == ["requested", "generated"]


@pytest.mark.django_db
def test_template_engine_drafts_pass_the_check():
    product = make_product(title="Acme Wireless Earbuds 24-Hour Battery", features=["24-hour battery", "IPX4"])
    (draft,) = copywriting.request_drafts([product.pk], Kind.MARKETING_LINE, "playful", "short",
                                          engine="template")
    assert copywriting.generate_draft(draft.pk) == Status.READY
    draft.refresh_from_db()
    assert draft.generator == "template" and draft.flags == [] and "Acme" in draft.text


@pytest.mark.django_db
@pytest.mark.parametrize("failure", ["unavailable", "timeout", "empty"])
def test_a_model_failure_marks_the_draft_failed_with_the_error(monkeypatch, failure):
    def fake(*args, **kwargs):
        if failure == "unavailable":
            raise ml.ModelUnavailable("no generator could be loaded")
        text = "" if failure == "empty" else "A partial"
        return Generation(text=text, new_tokens=2, seconds=0.5, stopped_by_timeout=failure == "timeout")

    monkeypatch.setattr(ml, "generate_detailed", fake)
    product = make_product()
    (draft,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION)
    assert copywriting.generate_draft(draft.pk) == Status.FAILED
    draft.refresh_from_db()
    assert draft.error and draft.text == ""
    assert {"unavailable": "unavailable", "timeout": "timed out", "empty": "nothing usable"}[failure] in draft.error
    assert draft.events.last().action == "failed"


@pytest.mark.django_db
def test_an_unexpected_error_fails_the_draft_instead_of_leaving_it_generating(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr("merchandising.drafts.fact_check", broken)
    (draft,) = copywriting.request_drafts([make_product().pk], Kind.DESCRIPTION, engine="template")
    assert copywriting.generate_draft(draft.pk) == Status.FAILED
    assert "Unexpected error: KeyError" in ProductCopyDraft.objects.get(pk=draft.pk).error


@pytest.mark.django_db
def test_a_redelivered_task_reclaims_only_a_stale_claim():
    product = make_product()
    (draft,) = copywriting.request_drafts([product.pk], Kind.MARKETING_LINE, engine="template")
    ProductCopyDraft.objects.filter(pk=draft.pk).update(status=Status.GENERATING, claimed_at=timezone.now())
    assert copywriting.generate_draft(draft.pk) == Status.GENERATING  # another worker is on it
    ProductCopyDraft.objects.filter(pk=draft.pk).update(claimed_at=timezone.now() - dt.timedelta(hours=1))
    assert copywriting.generate_draft(draft.pk) == Status.READY  # that worker died: taken over


@pytest.mark.django_db
def test_review_facts_come_from_sentiment_and_a_failure_there_is_skipped(monkeypatch, caplog):
    product = make_product()
    monkeypatch.setattr("sentiment.services.copy_facts", aspect_source)
    facts = copywriting.gather_facts(product)
    assert facts.loved_aspects == ("sound",) and facts.complained_aspects == ("battery",)
    assert facts.extra == {"Made in": "Portugal"}
    monkeypatch.setattr("sentiment.services.copy_facts", broken_source)
    facts = copywriting.gather_facts(product)
    assert facts.loved_aspects == () and facts.title == product.title
    assert "Review aspects failed" in caplog.text


def broken_source(product_id: int) -> dict:
    raise RuntimeError("the aspects service is down")


def aspect_source(product_id: int) -> dict:
    return {"loved_aspects": ["sound"], "complained_aspects": ["battery"], "Made in": "Portugal"}


@pytest.mark.django_db
def test_the_default_source_brings_review_aspects_from_sentiment():
    from sentiment.models import ProductSentiment

    product = make_product()
    assert copywriting.gather_facts(product).loved_aspects == ()  # no reviews yet
    ProductSentiment.objects.create(product=product, reviews=12, positive=9, negative=3, loves=["sound", "setup"],
                                    complaints=["battery"])
    cache.clear()  # sentiment caches its summaries, "none yet" included
    facts = copywriting.gather_facts(product)
    assert facts.loved_aspects == ("sound", "setup") and facts.complained_aspects == ("battery",)


@pytest.mark.django_db
def test_edit_rechecks_accept_publishes_and_history_keeps_who_and_when():
    editor, approver = make_user(), make_user()
    product = make_product(title="Acme Soundbar", features=["Dolby Atmos"], description="Old text.")
    (draft,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION, engine="template")
    copywriting.generate_draft(draft.pk)
    draft = copywriting.edit_draft(draft.pk, "The Acme Soundbar with 7 speakers.", editor)
    assert draft.status == Status.NEEDS_REVIEW
    assert [(f["text"], f["kind"]) for f in draft.flags] == [("7 speakers", "number"),
                                                            ("The Acme Soundbar with 7 speakers.", "grounding")]
    draft = copywriting.edit_draft(draft.pk, "The Acme Soundbar with Dolby Atmos.", editor)
    assert draft.status == Status.READY and draft.flags == []
    copywriting.accept_draft(draft.pk, approver)
    product.refresh_from_db()
    draft.refresh_from_db()
    assert product.description == "The Acme Soundbar with Dolby Atmos." and draft.status == Status.ACCEPTED
    assert draft.decided_by == approver and draft.generated_text != draft.text
    events = list(copywriting.history(draft))
    assert [e.action for e in events] == ["requested", "generated", "edited", "edited", "accepted"]
    assert [e.actor for e in events[2:]] == [editor, editor, approver]
    assert events[-1].details["previous"] == "Old text." and events[-1].details["field"] == "description"
    for late in (copywriting.accept_draft, copywriting.reject_draft):
        with pytest.raises(copywriting.ValidationError):
            late(draft.pk, approver)
    with pytest.raises(copywriting.ValidationError):
        copywriting.edit_draft(draft.pk, "Too late.", editor)


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "field"), [(Kind.MARKETING_LINE, "marketing_line"),
                                             (Kind.EMAIL_BLURB, "email_blurb")])
def test_marketing_kinds_publish_to_their_own_fields(kind, field):
    product = make_product(description="Keep me.")
    (draft,) = copywriting.request_drafts([product.pk], kind, engine="template")
    copywriting.generate_draft(draft.pk)
    copywriting.accept_draft(draft.pk)
    product.refresh_from_db()
    assert getattr(product, field) == ProductCopyDraft.objects.get(pk=draft.pk).text
    assert product.description == "Keep me."


@pytest.mark.django_db
def test_reject_keeps_the_product_text_and_a_rejected_queued_draft_is_never_generated():
    product = make_product(description="Unchanged.")
    (ready,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION, engine="template")
    copywriting.generate_draft(ready.pk)
    copywriting.reject_draft(ready.pk, make_user(), note="off-brand")
    (queued,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION, engine="template")
    copywriting.reject_draft(queued.pk)
    assert copywriting.generate_draft(queued.pk) == Status.REJECTED
    product.refresh_from_db()
    assert product.description == "Unchanged."
    assert ProductCopyDraft.objects.get(pk=ready.pk).status == Status.REJECTED
    assert ProductCopyDraftEvent.objects.get(draft=ready, action="rejected").details["note"] == "off-brand"


@pytest.mark.django_db
def test_needs_copy_lists_thin_active_products_thinnest_first():
    empty = make_product(description="")
    blank = make_product(description="   ")
    short = make_product(description="Small and handy speaker.")
    rich = make_product(description=" ".join(["word"] * 40))
    make_product(description="", is_active=False)
    listed = list(copywriting.needs_copy_products(min_words=25))
    assert {p.pk for p in listed[:2]} == {empty.pk, blank.pk} and [p.pk for p in listed[2:]] == [short.pk]
    assert [p.copy_words for p in listed] == [0, 0, 4]
    assert rich.pk not in {p.pk for p in copywriting.needs_copy_products(min_words=25)}
    assert rich.pk in {p.pk for p in copywriting.needs_copy_products(min_words=41)}


# --- the admin -----------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_superuser("merch", "merch@example.com", "pw-merch-123"))
    return client


PRODUCTS_URL = "admin:shop_product_changelist"


@pytest.mark.django_db
def test_the_draft_actions_render_the_intermediate_form(staff_client):
    a, b = make_product(title="Acme Speaker"), make_product(title="Acme Lamp")
    response = staff_client.post(reverse(PRODUCTS_URL), {"action": "draft_description",
                                                         "_selected_action": [a.pk, b.pk]})
    page = response.content.decode()
    assert response.status_code == 200 and 'id="copy-request-form"' in page
    assert "Acme Speaker" in page and "Acme Lamp" in page and 'name="tone"' in page and 'name="length"' in page
    assert ProductCopyDraft.objects.count() == 0
    page = staff_client.post(reverse(PRODUCTS_URL), {"action": "draft_marketing_copy",
                                                     "_selected_action": [a.pk]}).content.decode()
    assert 'value="marketing_line"' in page and 'value="email_blurb"' in page and 'value="description"' not in page


@pytest.mark.django_db
def test_applying_the_action_queues_drafts_and_the_eager_task_writes_them(staff_client, tiny_model,
                                                                          django_capture_on_commit_callbacks):
    a, b = make_product(description="Kept."), make_product(description="Kept.")
    form = {"action": "draft_description", "_selected_action": [a.pk, b.pk], "apply": "1", "kind": "description",
            "tone": "premium", "length": "short", "engine": "model"}
    response = staff_client.post(reverse(PRODUCTS_URL), form, follow=True)
    assert "Queued 2 draft(s)" in response.content.decode()
    assert set(ProductCopyDraft.objects.values_list("status", "tone")) == {(Status.QUEUED, "premium")}
    ProductCopyDraft.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):  # the tasks run in-process here
        staff_client.post(reverse(PRODUCTS_URL), form)
    statuses = set(ProductCopyDraft.objects.values_list("status", flat=True))
    assert statuses <= {Status.READY, Status.NEEDS_REVIEW} and ProductCopyDraft.objects.count() == 2
    assert set(Product.objects.values_list("description", flat=True)) == {"Kept."}
    # A marketing action cannot be tricked into drafting descriptions.
    staff_client.post(reverse(PRODUCTS_URL), {**form, "action": "draft_marketing_copy"})
    assert ProductCopyDraft.objects.count() == 2


@pytest.mark.django_db
def test_single_product_draft_copy_page(staff_client, django_capture_on_commit_callbacks):
    product = make_product()
    change = staff_client.get(reverse("admin:shop_product_change", args=[product.pk])).content.decode()
    url = reverse("admin:merchandising_draft_copy", args=[product.pk])
    assert url in change
    assert 'id="copy-request-form"' in staff_client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, {"kind": "email_blurb", "tone": "friendly", "length": "long",
                                           "engine": "template"})
    assert response.status_code == 302
    draft = ProductCopyDraft.objects.get()
    assert (draft.kind, draft.status) == (Kind.EMAIL_BLURB, Status.READY)
    change = staff_client.get(reverse("admin:shop_product_change", args=[product.pk])).content.decode()
    assert "Copy drafts" in change and draft.text[:40] in change
    assert reverse("admin:merchandising_productcopydraft_change", args=[draft.pk]) in change


def _ready_draft(product: Product, kind: str = Kind.DESCRIPTION) -> ProductCopyDraft:
    (draft,) = copywriting.request_drafts([product.pk], kind, engine="template")
    copywriting.generate_draft(draft.pk)
    return ProductCopyDraft.objects.get(pk=draft.pk)


@pytest.mark.django_db
def test_accept_in_the_admin_publishes_and_the_history_shows_it(staff_client):
    product = make_product(description="Before.")
    draft = _ready_draft(product)
    url = reverse("admin:merchandising_productcopydraft_change", args=[draft.pk])
    page = staff_client.get(url).content.decode()
    assert 'id="accept-draft"' in page and "Passed" in page and "Before." in page
    response = staff_client.post(url, {"text": "Edited before publishing.", "_accept": "1"}, follow=True)
    product.refresh_from_db()
    assert product.description == "Edited before publishing."
    page = response.content.decode()
    assert "Accepted and published" in page and "merch" in page and 'id="accept-draft"' not in page
    assert list(draft.events.values_list("action", flat=True)) == ["requested", "generated", "edited", "accepted"]


@pytest.mark.django_db
def test_reject_in_the_admin_keeps_the_text(staff_client):
    product = make_product(description="Before.")
    draft = _ready_draft(product)
    staff_client.post(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk]),
                      {"text": draft.text, "_reject": "1"})
    product.refresh_from_db()
    assert product.description == "Before." and ProductCopyDraft.objects.get(pk=draft.pk).status == Status.REJECTED


@pytest.mark.django_db
def test_saving_an_edit_in_the_admin_rechecks_the_facts(staff_client):
    draft = _ready_draft(make_product(title="Acme Lamp", features=["Warm light"]))
    staff_client.post(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk]),
                      {"text": "The best lamp, with free shipping.", "_save": "1"})
    draft.refresh_from_db()
    assert draft.status == Status.NEEDS_REVIEW
    assert {f["text"] for f in draft.flags if f["kind"] == "claim"} == {"best", "free shipping"}
    page = staff_client.get(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk])).content.decode()
    assert "superlative not in the facts" in page


@pytest.mark.django_db
def test_bulk_accept_and_reject_actions(staff_client):
    a, b = make_product(), make_product()
    da, db_ = _ready_draft(a, Kind.MARKETING_LINE), _ready_draft(b, Kind.MARKETING_LINE)
    url = reverse("admin:merchandising_productcopydraft_changelist")
    staff_client.post(url, {"action": "accept_selected", "_selected_action": [da.pk], "index": 0})
    staff_client.post(url, {"action": "reject_selected", "_selected_action": [da.pk, db_.pk], "index": 0})
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.marketing_line == da.text and b.marketing_line == ""
    assert dict(ProductCopyDraft.objects.values_list("pk", "status")) == {da.pk: Status.ACCEPTED,
                                                                          db_.pk: Status.REJECTED}


@pytest.mark.django_db
def test_needs_copy_view_lists_thin_products_and_not_rich_ones(staff_client):
    thin = make_product(title="Thin Widget", description="")
    make_product(title="Rich Widget", description=" ".join(["lovely"] * 40))
    changelist = staff_client.get(reverse(PRODUCTS_URL)).content.decode()
    url = reverse("admin:merchandising_needs_copy")
    assert url in changelist
    page = staff_client.get(url).content.decode()
    assert "Thin Widget" in page and "Rich Widget" not in page and 'value="draft_description"' in page
    assert "Rich Widget" in staff_client.get(url, {"min_words": 100}).content.decode()
    filtered = staff_client.get(reverse(PRODUCTS_URL), {"copy": "thin"}).content.decode()
    assert "Thin Widget" in filtered and "Rich Widget" not in filtered
    # Its form posts the selection to the draft action, which asks for tone and length.
    response = staff_client.post(reverse(PRODUCTS_URL), {"action": "draft_description", "index": 0,
                                                         "_selected_action": [thin.pk]})
    assert 'id="copy-request-form"' in response.content.decode()


@pytest.mark.django_db
def test_draft_text_is_escaped_in_the_admin(staff_client):
    product = make_product(title="Acme <b>Bold</b> Speaker")
    draft = _ready_draft(product)
    evil = '<script>alert("x")</script> Acme speaker.'
    copywriting.edit_draft(draft.pk, evil)
    pages = [staff_client.get(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk])),
             staff_client.get(reverse("admin:merchandising_productcopydraft_changelist")),
             staff_client.get(reverse("admin:shop_product_change", args=[product.pk])),
             staff_client.get(reverse("admin:merchandising_needs_copy"))]
    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        assert "<script>alert" not in html and "<b>Bold</b>" not in html
    assert "&lt;script&gt;alert" in pages[0].content.decode()


@pytest.mark.django_db
def test_a_failed_draft_shows_its_error_not_a_server_error(staff_client, monkeypatch):
    monkeypatch.setattr(ml, "generate_detailed", lambda *a, **k: (_ for _ in ()).throw(ml.ModelUnavailable("gone")))
    product = make_product()
    (draft,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION)
    copywriting.generate_draft(draft.pk)
    page = staff_client.get(reverse("admin:merchandising_productcopydraft_change", args=[draft.pk]))
    assert page.status_code == 200 and "unavailable" in page.content.decode()


# --- the real model ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
def test_smollm2_drafts_a_description_with_a_fact_check_result():
    product = make_product(title='Samsung 65" Class - QN90D Series - 4K UHD Neo QLED TV', brand="Samsung",
                           features=["Neural Quantum Processor 4K", "144Hz Refresh Rate", "Anti-Glare Screen"],
                           price=Decimal("1499.99"))
    (draft,) = copywriting.request_drafts([product.pk], Kind.MARKETING_LINE, "friendly", "short")
    status = copywriting.generate_draft(draft.pk, timeout=600)  # the CPU here is shared
    draft.refresh_from_db()
    assert status in (Status.READY, Status.NEEDS_REVIEW), draft.error
    assert draft.text.strip() and draft.generator and draft.generator != "template"
    assert isinstance(draft.flags, list) and (draft.status == Status.READY) == (not draft.flags)


# --- ml.grounding in the fact check, and bad input --------------------------------------------------------


def test_a_sentence_the_facts_do_not_support_is_flagged_by_the_grounding_check():
    draft = "The Samsung QN90D is perfect for gamers who stay up all night."
    assert check(draft) == []  # no number, claim or name the copy rules know of...
    flags = full_check(draft)
    assert [(f["text"], f["kind"]) for f in flags] == [(draft, "grounding")]  # ...but no fact says it
    assert "not supported by the facts" in flags[0]["reason"]
    assert full_check("The Samsung QN90D has a 144Hz refresh rate and an anti-glare screen.") == []


@pytest.mark.parametrize(("facts", "reason"), [
    (CopyFacts(title="Acme Speaker", brand="Acme", category="Audio"), "no bullets"),
    (CopyFacts(title="Acme Speaker " * 400, brand="Acme", features=("Loud",)), "5,200 characters long"),
    (CopyFacts(title="Acme Speaker", brand="Acme", features=("<b>Loud</b> sound",)), "markup in the product's facts"),
    (CopyFacts(title="  ", brand="Acme", features=("Loud",)), "no title"),
])
def test_bad_input_has_a_skip_reason(facts, reason):
    assert reason in copywriting.skip_reason(facts)
    assert copywriting.skip_reason(TV) == ""


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "reason"), [
    ({"features": []}, "no bullets"),
    ({"features": ["<script>alert(1)</script> Loud", "Bluetooth 5.3"]}, "markup in the product's facts"),
])
def test_bad_input_is_skipped_with_a_reason_and_never_reaches_the_generator(monkeypatch, fields, reason):
    def never(*args, **kwargs):
        raise AssertionError("the generator was called")

    monkeypatch.setattr(ml, "generate_detailed", never)
    product = make_product(**fields)
    (draft,) = copywriting.request_drafts([product.pk], Kind.DESCRIPTION)
    assert copywriting.generate_draft(draft.pk) == Status.FAILED
    draft.refresh_from_db()
    assert draft.error.startswith("Skipped:") and reason in draft.error and draft.text == ""

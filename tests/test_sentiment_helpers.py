"""Shared builders for the sentiment tests (no tests here)."""

import datetime as dt
import random

from django.utils import timezone

from shop import services
from shop.models import Review

from .factories import make_category, make_product

POSITIVE = "Great, I love it."
NEGATIVE = "Terrible, I hate it."

# Star-labelled reviews where VADER is wrong on purpose: the negative ones carry no opinion words
# (VADER: neutral), the 3-star ones sound mildly positive to it. Only a model trained on the stars learns them.
STAR_TEXTS = {
    1: ["the screen cracked on day two", "battery drains overnight"],
    2: ["sent it back for a refund", "returned it, the hinge snapped"],
    3: ["ok for now", "it is fine i guess"],
    4: ["great sound and long battery life", "the tv picture is bright and sharp"],
    5: ["love this laptop", "fast delivery and easy setup"],
}

AUDIO = ["The sound is rich and the bass is deep.", "Great sound, but the battery dies fast.",
         "The bass is muddy and the sound distorts.", "Sound is clear and the battery lasts all day.",
         "The bass is punchy.", "The battery is weak.", "Sound is flat."]
CAMERA = ["The lens is sharp and the autofocus is quick.", "The autofocus hunts in low light.",
          "The zoom is smooth and the lens is bright.", "The lens cap fell off.",
          "Great zoom, but the autofocus is slow.", "The zoom is jerky.", "The autofocus is accurate."]
GENERAL = ["Delivery was fast.", "Good value for the price.", "The price is too high.", "Delivery was late."]


def review(product, rating: int, text: str, *, title: str = "My take", at: dt.datetime | None = None,
           status: str = Review.Status.APPROVED) -> Review:
    return services.post_review(product=product, user=None, rating=rating, title=title, text=text, status=status,
                                occurred_at=at)


def bulk_reviews(product, texts_and_ratings, *, at: dt.datetime | None = None) -> list[Review]:
    """Approved reviews inserted without signals (no scoring is triggered)."""
    at = at or timezone.now()
    return Review.objects.bulk_create([
        Review(product=product, rating=rating, title="My take", text=text, author_name="Shopper",
               status=Review.Status.APPROVED, created_at=at - dt.timedelta(minutes=i))
        for i, (text, rating) in enumerate(texts_and_ratings)])


def aspect_catalogue(n: int = 30, seed: int = 3):
    """Two categories whose reviews talk about different things (plus shop-wide topics)."""
    rng = random.Random(seed)
    audio_cat, camera_cat = make_category("Headphones"), make_category("Cameras")
    earbuds = make_category("Earbuds", parent=audio_cat)
    headphones = make_product(audio_cat, title="Acme Over-Ear Headphones", brand="Acme")
    camera = make_product(camera_cat, title="Zeta Mirrorless Camera", brand="Zeta")
    buds = make_product(earbuds, title="Acme Earbuds", brand="Acme")
    now = timezone.now()
    for product, pool in ((headphones, AUDIO), (camera, CAMERA)):
        bulk_reviews(product, [(" ".join(rng.sample(pool, 2) + rng.sample(GENERAL, 1)), rng.choice([2, 4, 5]))
                               for _ in range(n)], at=now)
    bulk_reviews(buds, [("Great sound, but the battery dies fast.", 3)], at=now)
    return {"audio": audio_cat, "camera": camera_cat, "earbuds": earbuds, "headphones": headphones,
            "camera_product": camera, "buds": buds}

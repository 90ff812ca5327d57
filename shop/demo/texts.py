"""Review titles and texts for simulated reviews, assembled from templates.

A review is an opener and a closer for its star level plus sentences about aspects of the
product (sound, battery, screen, price/value, delivery, setup, build quality...), picked
per top-level category (or sub-category where the group is too broad). The share of
positive to negative aspect sentences follows the stars, with realistic noise: most
4-star reviews name one complaint, 3-star ones weigh a plus against a minus, and a 2-star
review sometimes concedes a good point.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (positive sentences, negative sentences) per aspect.
Aspect = tuple[list[str], list[str]]

GENERAL_ASPECTS: dict[str, Aspect] = {
    "value": (
        ["For the price, the value is excellent.", "Great value for money.",
         "Worth the money, especially on sale."],
        ["Overpriced for what you get.", "Feels too expensive for what it is.",
         "Poor value; cheaper options do the same."],
    ),
    "delivery": (
        ["Delivery was fast and it arrived well packed.", "Arrived a day early, nicely packaged.",
         "Quick delivery and the tracking was accurate."],
        ["Delivery took longer than promised.", "The box arrived dented and delivery was slow.",
         "Shipping was slow and the tracking never updated."],
    ),
    "setup": (
        ["Setup took five minutes.", "Setting it up was easy and straightforward.",
         "Easy setup, the instructions are clear."],
        ["Setup was confusing and the instructions are poor.", "Took ages to set up.",
         "Setup was frustrating; I had to reset it twice."],
    ),
    "build": (
        ["Build quality feels solid and premium.", "Well made, with a sturdy build.",
         "Feels sturdy and well finished."],
        ["Build quality feels cheap and flimsy.", "The plastic feels flimsy and creaks.",
         "Poor build quality for the price."],
    ),
}

GROUP_ASPECTS: dict[str, dict[str, Aspect]] = {
    "Computers": {
        "performance": (["It's fast; apps open instantly and multitasking is smooth.",
                         "Performance is excellent for everyday work."],
                        ["It gets sluggish with more than a few tabs open.",
                         "Performance is disappointing, even for simple tasks."]),
        "screen": (["The screen is bright and sharp.", "Gorgeous display with accurate colours."],
                   ["The screen is dim and washed out.", "The display has noticeable backlight bleed."]),
        "battery": (["Battery easily lasts a full workday.", "Battery life is excellent."],
                    ["Battery life is poor; barely three hours.", "The battery drains fast."]),
        "noise": (["Runs quiet even under load.", "Silent during normal use."],
                  ["The fans are loud even when idle.", "It runs hot and noisy."]),
    },
    "Gaming": {
        "performance": (["Runs games smoothly at high frame rates.", "Handles every game I throw at it."],
                        ["Frame rates drop in demanding games.", "Stutters in newer games."]),
        "cooling": (["Stays cool during long sessions.", "Cooling is excellent, even after hours of play."],
                    ["Runs hot and the fans get noisy.", "Overheats during long gaming sessions."]),
        "graphics": (["Graphics look stunning.", "Great visuals, the kids love it."],
                     ["Graphics are underwhelming for the price.", "Visuals look dated."]),
        "fun": (["Hours of fun for the whole family.", "Great fun and a great gift."],
                ["Got boring quickly.", "Not much fun after the first week."]),
    },
    "TV & Home Theater": {
        "picture": (["Picture quality is stunning, with great colours and contrast.",
                     "Sharp, bright picture even in a sunny room."],
                    ["Picture quality is disappointing; blacks look grey.",
                     "The picture is blurry with fast motion."]),
        "sound": (["Sound is rich and clear.", "Dialogue is crisp and the bass is full."],
                  ["Sound is thin and tinny.", "Dialogue is hard to hear."]),
        "smart": (["The apps and the remote are quick and intuitive.", "Streaming apps load fast."],
                  ["The smart apps are slow and the remote is laggy.", "The menus are sluggish and clunky."]),
    },
    "Audio": {
        "sound": (["Sound quality is excellent with deep bass.", "Clear, detailed sound at any volume."],
                  ["Sound is muddy and distorts at high volume.", "Weak bass and harsh highs."]),
        "battery": (["Battery lasts for days.", "Battery life is excellent."],
                    ["Battery drains quickly.", "Battery life is much shorter than advertised."]),
        "comfort": (["Comfortable for hours.", "Light and comfortable."],
                    ["Uncomfortable after an hour.", "Heavy and awkward to use."]),
        "connectivity": (["Bluetooth pairs instantly and never drops.", "Connects reliably every time."],
                         ["Bluetooth keeps disconnecting.", "Pairing is unreliable."]),
    },
    "Smart Home": {
        "app": (["The app is clear and reliable.", "The app is well designed and easy to use."],
                ["The app is buggy and crashes.", "The app is confusing and slow."]),
        "connection": (["Stays connected to Wi-Fi without issues.", "Rock-solid connection."],
                       ["Keeps dropping off the Wi-Fi.", "The connection is unreliable."]),
        "alerts": (["Notifications arrive instantly.", "Alerts are fast and accurate."],
                   ["Alerts arrive late or not at all.", "Too many false alerts."]),
        "video": (["Video is clear, even at night.", "Crisp video and good night vision."],
                  ["Night vision is grainy and hard to make out.", "Video is blurry and lags."]),
    },
    "Phones & Wearables": {
        "battery": (["Battery lasts several days.", "Battery life is excellent."],
                    ["Battery barely lasts a day.", "The battery drains fast."]),
        "screen": (["The screen is bright and easy to read outdoors.", "Lovely sharp display."],
                   ["The screen is hard to read in sunlight.", "The display scratches easily."]),
        "tracking": (["Fitness tracking is accurate.", "Calls and tracking work perfectly."],
                     ["Step and heart-rate tracking are inaccurate.", "Call quality is poor."]),
        "comfort": (["Comfortable to wear all day.", "Light and comfortable."],
                    ["Uncomfortable to wear for long.", "The strap irritates my wrist."]),
    },
    "Cameras": {
        "image": (["Photos and video are crisp and vivid.", "Image quality is excellent."],
                  ["Images look soft and noisy.", "Video quality is disappointing in low light."]),
        "stabilisation": (["Stabilisation is superb.", "Footage is smooth even when running."],
                          ["Footage is shaky.", "Stabilisation is weak."]),
        "battery": (["Battery lasts a full day of shooting.", "Good battery life."],
                    ["Battery dies quickly.", "Battery life is poor."]),
        "ease": (["Very easy to use.", "Intuitive controls."],
                 ["The menus are confusing.", "Awkward to use."]),
    },
    "Power & Accessories": {
        "longevity": (["They last a long time.", "Long-lasting power, as promised."],
                      ["They ran out much faster than expected.", "Did not last long at all."]),
        "capacity": (["Plenty of capacity for a weekend away.", "Powers everything I need."],
                     ["Capacity is lower than advertised.", "Could not power what I needed."]),
    },
}

# Sub-categories whose products need their own aspects (their group's would read oddly).
LEAF_ASPECTS: dict[str, dict[str, Aspect]] = {
    "Monitors": {"screen": GROUP_ASPECTS["Computers"]["screen"]},
    "Hard Drives, SSD & Storage": {
        "speed": (["Transfers are very fast.", "Fast and reliable storage."],
                  ["Transfer speeds are slow.", "Slower than advertised."]),
    },
    "Musical Instruments": {
        "sound": (["The sound is rich and realistic.", "Sounds wonderful."],
                  ["The sound is thin and artificial.", "Sounds cheap."]),
        "feel": (["The keys and controls feel great.", "Lovely to play."],
                 ["The keys feel cheap.", "Not pleasant to play."]),
    },
    "Routers, Wifi Extenders & Modems": {
        "range": (["Coverage reaches every room now.", "Great range and fast speeds."],
                  ["Range is disappointing.", "Speeds drop in the next room."]),
    },
    "Projectors": {"picture": GROUP_ASPECTS["TV & Home Theater"]["picture"]},
    "Streaming Devices": {"smart": GROUP_ASPECTS["TV & Home Theater"]["smart"]},
    "Soundbars & Home Theater": {"sound": GROUP_ASPECTS["TV & Home Theater"]["sound"]},
    "Video Games & Consoles": {"fun": GROUP_ASPECTS["Gaming"]["fun"]},
}

NOUNS = {
    "Laptops & Notebook Computers": "laptop", "Desktop Computers & PCs": "computer",
    "Mini PC Desktop Computer & PCs": "mini PC", "Monitors": "monitor", "iPad & Tablets": "tablet",
    "Hard Drives, SSD & Storage": "drive", "Video Games & Consoles": "purchase",
    "Gaming Desktop Computer & PCs": "gaming PC", "Gaming Laptops & Notebook Computers": "gaming laptop",
    "TVs": "TV", "Soundbars & Home Theater": "soundbar", "Projectors": "projector",
    "Streaming Devices": "streamer", "Headphones & Earbuds": "pair of headphones",
    "Speakers & Voice Assistants": "speaker", "Musical Instruments": "instrument",
    "Home Security Systems & Cameras": "security system", "Smart Home & Safety": "smart home device",
    "Routers, Wifi Extenders & Modems": "router", "Smart Watches": "watch",
    "Phones & Two-way Radios": "phone", "Cameras & Camcorders": "camera", "Batteries": "purchase",
}

OPENERS = {
    5: ["Absolutely love this {noun}.", "Best {noun} I have owned so far.", "Exceeded my expectations.",
        "Couldn't be happier with this {noun}.", "Fantastic, no regrets at all."],
    4: ["Really good {noun} overall.", "Very happy with it, with one small caveat.",
        "A solid {noun} that does what it promises.", "Great purchase, nearly perfect."],
    3: ["It's okay, a mixed bag.", "A decent {noun}, but not without problems.", "Does the job, nothing more.",
        "An average {noun}: some things are good, some are not."],
    2: ["Disappointed with this {noun}.", "Expected a lot more for the money.", "Not great, to be honest.",
        "Had problems with it from the first week."],
    1: ["Terrible {noun}, would not recommend.", "The worst purchase I've made in a while.",
        "Stopped working almost right away.", "A complete waste of money."],
}
CLOSERS = {
    5: ["Highly recommend it.", "Would buy again in a heartbeat.", "Worth every penny.",
        "Already recommended it to friends."],
    4: ["Would still recommend it.", "Happy with the purchase overall.", "Good value overall.",
        "I'd buy it again."],
    3: ["Fine if you find it on sale.", "Not sure I'd buy it again.", "It's fine for the price, I guess.",
        "Compare alternatives first."],
    2: ["I'm thinking about returning it.", "Can't really recommend it.", "Look elsewhere.",
        "Expected better from {brand}."],
    1: ["Returned it for a refund.", "Avoid.", "Save your money.", "Sending it back."],
}
TITLES = {
    5: ["Fantastic {noun}", "Love it!", "Excellent in every way", "Exceeded expectations", "Perfect"],
    4: ["Very good, one small gripe", "Great {noun}", "Happy with it", "Nearly perfect"],
    3: ["It's okay", "Mixed feelings", "Decent but flawed", "Average"],
    2: ["Disappointing", "Not worth the price", "Expected more", "Meh"],
    1: ["Avoid", "Very disappointed", "Broke quickly", "Don't buy"],
}
COMPLAINT_LEADS = ["My only complaint: ", "One downside: ", "Minor gripe: "]
CONTRAST_LEADS = ["On the other hand, ", "However, ", "But "]
CONCESSION_LEADS = ["To be fair, ", "On the plus side, "]


@dataclass(frozen=True)
class ReviewText:
    title: str
    text: str
    positives: int
    negatives: int


def _lead(lead: str, sentence: str) -> str:
    """"However, " + "The screen is dim." -> "However, the screen is dim." (proper nouns kept)."""
    first = sentence.split()[0].strip(".,;:")
    if first not in {"Bluetooth", "I", "I'd", "I've", "Wi-Fi"} and not first.isupper():
        sentence = sentence[0].lower() + sentence[1:]
    return lead + sentence


def aspects_for(group: str, leaf: str = "") -> dict[str, Aspect]:
    """Category aspects first (the leaf's own if it has them), then the general ones."""
    specific = LEAF_ASPECTS.get(leaf) or GROUP_ASPECTS.get(group, {})
    return {**specific, **GENERAL_ASPECTS}


def compose_review(rng: random.Random, stars: int, *, group: str, leaf: str = "",
                   brand: str = "", focus: str | None = None) -> ReviewText:
    """A title and text whose tone follows `stars` (1-5); `focus` names an aspect it must mention
    first (e.g. the fault of a bad batch)."""
    if stars not in OPENERS:
        raise ValueError("stars must be 1..5")
    noun = NOUNS.get(leaf, "product")
    aspects = aspects_for(group, leaf)
    specific = [name for name in aspects if name not in GENERAL_ASPECTS]
    general = list(GENERAL_ASPECTS)
    # Mention one or two aspects of the category and one general aspect, in random order.
    chosen = rng.sample(specific, k=min(len(specific), rng.choice((1, 2)))) if specific else []
    chosen += rng.sample(general, k=1 if chosen else 2)
    rng.shuffle(chosen)
    if focus is not None:
        if focus not in aspects:
            raise ValueError(f"unknown aspect {focus!r} for {leaf or group}")
        chosen = [focus, *[name for name in chosen if name != focus]]

    def pos(name: str) -> str:
        return rng.choice(aspects[name][0])

    def neg(name: str) -> str:
        return rng.choice(aspects[name][1])

    body: list[str] = []
    positives = negatives = 0
    if stars == 5:
        body = [pos(name) for name in chosen]
        positives = len(body)
    elif stars == 4:
        body = [pos(name) for name in chosen[:2]]
        positives = len(body)
        if rng.random() < 0.7:  # the typical 4-star review names one complaint
            spare = [name for name in aspects if name not in chosen[:2]] or chosen
            body.append(_lead(rng.choice(COMPLAINT_LEADS), neg(rng.choice(spare))))
            negatives = 1
    elif stars == 3:
        first, second = (chosen * 2)[:2]
        if first == second:
            second = rng.choice([name for name in aspects if name != first])
        body = [pos(first), _lead(rng.choice(CONTRAST_LEADS), neg(second))]
        positives, negatives = 1, 1
    elif stars == 2:
        body = [neg(name) for name in chosen[:2]]
        negatives = len(body)
        if rng.random() < 0.35:
            spare = [name for name in aspects if name not in chosen[:2]] or chosen
            body.append(_lead(rng.choice(CONCESSION_LEADS), pos(rng.choice(spare))))
            positives = 1
    else:
        body = [neg(name) for name in chosen]
        negatives = len(body)

    fill = {"noun": noun, "brand": brand or "this brand"}
    opener = rng.choice(OPENERS[stars]).format(**fill)
    closer = rng.choice(CLOSERS[stars]).format(**fill)
    title = rng.choice(TITLES[stars]).format(**fill)
    title = title[0].upper() + title[1:]
    return ReviewText(title=title, text=" ".join([opener, *body, closer]), positives=positives,
                      negatives=negatives)


FIRST_NAMES = [
    "Sam", "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Maya", "Liam",
    "Noah", "Emma", "Olivia", "Ava", "Sofia", "Lucas", "Mia", "Ethan", "Isla", "Leo", "Zoe", "Omar", "Priya",
    "Chen", "Hana", "Diego", "Lena", "Marco", "Aisha", "Tom", "Nina", "Ravi", "Elena", "Kofi", "Yuki", "Sara",
    "Ben", "Grace", "Ivan", "Chloe", "Mateo", "Amara", "Felix", "Nora", "Hugo", "Ines", "Kai", "Layla",
]
LAST_INITIALS = "ABCDEFGHJKLMNOPRSTVWY"


def author_name(first_name: str, last_initial: str) -> str:
    """Public name of a simulated reviewer; the suffix keeps simulated reviews recognisable."""
    return f"{first_name} {last_initial}. (simulated)"

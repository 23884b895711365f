"""Deterministic demo dataset (profiles and events) for the demo workspace.

`demo_dataset_load` replaces the workspace's profiles and events with a generated
shop audience: the same seed on the same UTC day gives the same rows (database ids
aside). Times are relative to today's UTC midnight and span the 60 days before it.

Built in patterns that later features (segments, journeys, analytics) can find:
- about 3% of profiles logged in every day since signup for 10 days or more, and
  every other profile skipped a day within its first 10 (so a "streak since signup"
  rule matches exactly the streakers); streakers act only at hours where their local
  date equals the UTC date, so the streak holds whichever of the two calendars a rule
  counts days in;
- about 4% bought a second time within 7 days of their first order, and nobody else
  did (other repeat orders come 8 days or more after the first);
- abandoned carts and checkouts, support tickets, reviews after orders, and email /
  push campaigns with opens and clicks.

Emails use the reserved example.com/.net/.org domains; phone numbers use the
fictional ranges where a country has one (US/CA 555-01xx, GB 07700 900xxx) and
plausible random mobile numbers elsewhere, so the demo must never be pointed at a
real SMS provider.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg
from django.db import connection, transaction
from psycopg.types.json import set_json_dumps

from engagement_site.workspaces.models import Workspace
from segments.models import Event, Identity, Profile
from segments.partitions import event_partitions_ensure

WINDOW_DAYS = 60
CURRENCY = "EUR"
EVENT_CONTEXT = {"library": {"name": "demo-generator", "version": "1.0"}}

TRACK, IDENTIFY, PAGE, SCREEN = (
    Event.Type.TRACK.value,
    Event.Type.IDENTIFY.value,
    Event.Type.PAGE.value,
    Event.Type.SCREEN.value,
)

# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class _Country:
    code: str
    weight: int
    time_zones: tuple[tuple[str, int], ...]
    locales: tuple[tuple[str, int], ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    phone: Callable[[random.Random], str]


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(","))


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


_NANP_AREA_CODES = {
    "US": (
        212,
        646,
        718,
        415,
        510,
        408,
        312,
        773,
        713,
        832,
        214,
        512,
        206,
        617,
        305,
        404,
        303,
        602,
        702,
        215,
        612,
        503,
        619,
        313,
        704,
    ),
    "CA": (416, 647, 604, 778, 514, 438, 403, 587, 613, 780),
}


def _phone_nanp(country: str) -> Callable[[random.Random], str]:
    # 555-0100 .. 555-0199 is reserved for fiction in every area code.
    return lambda rng: f"+1{rng.choice(_NANP_AREA_CODES[country])}55501{_digits(rng, 2)}"


def _phone_pattern(prefixes: tuple[str, ...], digits: int) -> Callable[[random.Random], str]:
    return lambda rng: f"{rng.choice(prefixes)}{_digits(rng, digits)}"


COUNTRIES: tuple[_Country, ...] = (
    _Country(
        "US",
        30,
        (
            ("America/New_York", 45),
            ("America/Chicago", 25),
            ("America/Denver", 8),
            ("America/Los_Angeles", 22),
        ),
        (("en-US", 92), ("es-US", 8)),
        _names(
            "James, Mary, Michael, Patricia, Robert, Jennifer, David, Linda, William, Elizabeth, Daniel, Sarah, Matthew, Jessica, Anthony, Ashley, Joshua, Emily, Andrew, Madison, Tyler, Hannah, Brandon, Olivia, Ethan, Chloe"
        ),
        _names(
            "Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, Wilson, Anderson, Taylor, Thomas, Moore, Jackson, Martin, Lee, Thompson, White, Harris, Clark, Lewis, Walker, Young, Allen"
        ),
        _phone_nanp("US"),
    ),
    _Country(
        "CA",
        6,
        (("America/Toronto", 60), ("America/Vancouver", 25), ("America/Edmonton", 15)),
        (("en-CA", 75), ("fr-CA", 25)),
        _names(
            "Liam, Emma, Noah, Olivia, William, Charlotte, Benjamin, Chloe, Lucas, Florence, Nathan, Léa, Samuel, Alice, Thomas, Zoé, Owen, Maya"
        ),
        _names(
            "Tremblay, Gagnon, Roy, Côté, Bouchard, Gauthier, Morin, Lavoie, Fortin, Smith, Brown, Wilson, MacDonald, Campbell, Martin, Leblanc"
        ),
        _phone_nanp("CA"),
    ),
    _Country(
        "GB",
        10,
        (("Europe/London", 1),),
        (("en-GB", 1),),
        _names(
            "Oliver, Amelia, George, Isla, Harry, Ava, Jack, Mia, Charlie, Ivy, Jacob, Grace, Alfie, Freya, Freddie, Lily, Arthur, Sophie, Leo, Poppy"
        ),
        _names(
            "Smith, Jones, Taylor, Brown, Williams, Wilson, Johnson, Davies, Patel, Robinson, Wright, Thompson, Evans, Walker, White, Roberts, Green, Hall, Wood, Hughes"
        ),
        # Ofcom's drama range for mobiles: 07700 900000 .. 07700 900999.
        lambda rng: f"+447700900{_digits(rng, 3)}",
    ),
    _Country(
        "DE",
        14,
        (("Europe/Berlin", 1),),
        (("de-DE", 93), ("en-GB", 7)),
        _names(
            "Lukas, Sophie, Leon, Marie, Finn, Emilia, Jonas, Hannah, Paul, Mia, Felix, Lena, Maximilian, Anna, Elias, Lea, Jan, Laura, Tim, Julia, Moritz, Clara"
        ),
        _names(
            "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann, Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann"
        ),
        _phone_pattern(
            (
                "+49151",
                "+49152",
                "+49157",
                "+49160",
                "+49162",
                "+49170",
                "+49171",
                "+49172",
                "+49176",
            ),
            8,
        ),
    ),
    _Country(
        "FR",
        8,
        (("Europe/Paris", 1),),
        (("fr-FR", 1),),
        _names(
            "Gabriel, Jade, Louis, Louise, Raphaël, Emma, Jules, Alice, Adam, Chloé, Lucas, Lina, Léo, Rose, Hugo, Léna, Arthur, Mila"
        ),
        _names(
            "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau, Simon, Laurent, Lefebvre, Michel, Garcia, David, Bertrand, Roux"
        ),
        _phone_pattern(("+336", "+337"), 8),
    ),
    _Country(
        "ES",
        5,
        (("Europe/Madrid", 1),),
        (("es-ES", 90), ("ca-ES", 10)),
        _names(
            "Hugo, Lucía, Martín, Sofía, Pablo, Martina, Mateo, María, Alejandro, Julia, Daniel, Paula, Álvaro, Valeria, Diego, Carmen"
        ),
        _names(
            "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, Martín, Jiménez, Ruiz, Hernández, Díaz, Moreno, Álvarez"
        ),
        _phone_pattern(("+346",), 8),
    ),
    _Country(
        "IT",
        5,
        (("Europe/Rome", 1),),
        (("it-IT", 1),),
        _names(
            "Leonardo, Sofia, Francesco, Giulia, Alessandro, Aurora, Lorenzo, Alice, Mattia, Ginevra, Andrea, Emma, Gabriele, Giorgia, Tommaso, Beatrice"
        ),
        _names(
            "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, Bruno, Gallo, Conti, De Luca, Costa, Giordano"
        ),
        _phone_pattern(("+39320", "+39333", "+39340", "+39347", "+39348", "+39380", "+39391"), 7),
    ),
    _Country(
        "NL",
        4,
        (("Europe/Amsterdam", 1),),
        (("nl-NL", 88), ("en-GB", 12)),
        _names(
            "Noah, Emma, Sem, Julia, Lucas, Mila, Levi, Tess, Finn, Sophie, Daan, Zoë, Luuk, Sara, Milan, Anna"
        ),
        _names(
            "de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, Meijer, de Boer, Mulder, de Groot, Bos, Vos, Peters"
        ),
        _phone_pattern(("+316",), 8),
    ),
    _Country(
        "AU",
        5,
        (("Australia/Sydney", 55), ("Australia/Melbourne", 30), ("Australia/Perth", 15)),
        (("en-AU", 1),),
        _names(
            "Oliver, Charlotte, Noah, Amelia, Jack, Olivia, William, Isla, Leo, Mia, Lucas, Ava, Henry, Grace, Thomas, Matilda"
        ),
        _names(
            "Smith, Jones, Williams, Brown, Wilson, Taylor, Nguyen, Johnson, Martin, White, Anderson, Walker, Thompson, Thomas, Lee, Ryan"
        ),
        _phone_pattern(("+614",), 8),
    ),
    _Country(
        "BR",
        5,
        (("America/Sao_Paulo", 1),),
        (("pt-BR", 1),),
        _names(
            "Miguel, Helena, Arthur, Alice, Gael, Laura, Heitor, Manuela, Théo, Valentina, Davi, Sophia, Gabriel, Isabella, Bernardo, Heloísa"
        ),
        _names(
            "Silva, Santos, Oliveira, Souza, Rodrigues, Ferreira, Alves, Pereira, Lima, Gomes, Costa, Ribeiro, Martins, Carvalho, Almeida, Lopes"
        ),
        _phone_pattern(("+55119", "+55219", "+55319", "+55419", "+55519", "+55619"), 8),
    ),
    _Country(
        "IN",
        4,
        (("Asia/Kolkata", 1),),
        (("en-IN", 80), ("hi-IN", 20)),
        _names(
            "Aarav, Aadhya, Vivaan, Ananya, Aditya, Diya, Arjun, Saanvi, Sai, Pari, Reyansh, Anika, Krishna, Navya, Ishaan, Myra"
        ),
        _names(
            "Sharma, Verma, Gupta, Patel, Singh, Kumar, Reddy, Iyer, Nair, Mehta, Joshi, Rao, Das, Chopra, Malhotra, Bose"
        ),
        _phone_pattern(("+917", "+918", "+919"), 9),
    ),
    _Country(
        "JP",
        4,
        (("Asia/Tokyo", 1),),
        (("ja-JP", 1),),
        _names(
            "Haruto, Himari, Minato, Yui, Sota, Mei, Yuto, Akari, Riku, Sakura, Hinata, Rin, Kaito, Aoi, Ren, Hana"
        ),
        _names(
            "Sato, Suzuki, Takahashi, Tanaka, Watanabe, Ito, Yamamoto, Nakamura, Kobayashi, Kato, Yoshida, Yamada, Sasaki, Yamaguchi, Matsumoto, Inoue"
        ),
        _phone_pattern(("+8170", "+8180", "+8190"), 8),
    ),
)

PLANS = (("free", 70), ("pro", 25), ("enterprise", 5))
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
SIGNUP_METHODS = (("email", 60), ("google", 30), ("apple", 10))

CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[float, float]]] = {
    "apparel": (
        ("T-Shirt", "Hoodie", "Jacket", "Jeans", "Sweater", "Cap", "Scarf", "Dress"),
        (15, 120),
    ),
    "shoes": (("Sneakers", "Running Shoes", "Boots", "Sandals", "Loafers"), (40, 180)),
    "electronics": (
        ("Headphones", "Smartwatch", "Speaker", "Charger", "Keyboard", "E-Reader"),
        (20, 400),
    ),
    "home": (("Mug", "Lamp", "Cushion", "Blanket", "Vase", "Candle", "Plant Pot"), (8, 90)),
    "beauty": (("Face Cream", "Shampoo", "Perfume", "Lip Balm", "Serum"), (6, 85)),
    "books": (("Novel", "Cookbook", "Travel Guide", "Notebook", "Comic"), (8, 40)),
}
PRODUCT_ADJECTIVES = ("Classic", "Urban", "Eco", "Premium", "Everyday", "Vintage", "Nordic", "Pro")

TICKET_TOPICS = (
    ("shipping", 30),
    ("returns", 20),
    ("billing", 20),
    ("account", 15),
    ("product_question", 15),
)
RATINGS = ((1, 5), (2, 7), (3, 13), (4, 30), (5, 45))
CAMPAIGN_NAMES = (
    "Weekly picks",
    "New arrivals",
    "Weekend sale",
    "Back in stock",
    "Staff favourites",
    "Last chance",
    "Gift guide",
    "Members' early access",
)

# Local hours people are active at, weighted (mornings, lunch, evenings).
ACTIVE_HOURS = tuple(range(7, 24))
ACTIVE_HOUR_WEIGHTS = (3, 6, 5, 4, 4, 6, 7, 5, 4, 4, 5, 7, 9, 10, 9, 6, 3)


@dataclass(frozen=True)
class _Activity:
    weight: int
    daily_session_chance: float
    purchase_chance: float
    email_open_chance: float
    push_open_chance: float


# "streak" has weight 0: it is assigned to ~3% of the signups old enough for it.
ACTIVITIES: dict[str, _Activity] = {
    "dormant": _Activity(30, 0.02, 0.07, 0.06, 0.05),
    "casual": _Activity(44, 0.15, 0.22, 0.22, 0.15),
    "regular": _Activity(26, 0.42, 0.42, 0.40, 0.30),
    "streak": _Activity(0, 0.50, 0.50, 0.50, 0.35),
}
STREAK_CHANCE = 0.037  # of the ~81% of signups old enough, i.e. ~3% of all profiles
STREAK_MIN_DAYS = 10
WEEKLY_REPEAT_CHANCE = 0.18  # of buyers, i.e. ~4% of all profiles
LATER_REPEAT_CHANCE = 0.25


@dataclass(frozen=True)
class _Product:
    product_id: str
    name: str
    category: str
    price: float


@dataclass(frozen=True)
class _Campaign:
    campaign_id: str
    name: str
    channel: str  # "email" or "push"
    sent_at: datetime


@dataclass
class _Person:
    index: int
    user_id: str
    anonymous_ids: list[str]
    zone: ZoneInfo
    locale: str
    country: str
    activity: str
    signup_at: datetime
    signup_date: date  # local
    days: int  # local days from the signup day to the anchor's local day, inclusive
    has_app: bool
    email_opt_in: bool
    push_opt_in: bool
    favourite_category: str
    clock_skew: timedelta
    traits: dict = field(default_factory=dict)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(char for char in folded.lower() if char.isalnum())


# --------------------------------------------------------------------------- generator


class _DemoGenerator:
    """Draws everything from one random.Random, in a fixed order: same seed, same rows."""

    def __init__(self, *, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.window_start = anchor - timedelta(days=WINDOW_DAYS)
        self.orders = itertools.count(100001)
        self.tickets = itertools.count(5001)
        self.carts = itertools.count(1)
        self.zones: dict[str, ZoneInfo] = {}
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()
        self.countries = tuple((country, country.weight) for country in COUNTRIES)
        self.activities = tuple((name, activity.weight) for name, activity in ACTIVITIES.items())
        self.hours = tuple(zip(ACTIVE_HOURS, ACTIVE_HOUR_WEIGHTS, strict=True))
        self.products = self._catalog()
        self.products_by_category: dict[str, list[_Product]] = {}
        for product in self.products:
            self.products_by_category.setdefault(product.category, []).append(product)
        self.campaigns = self._campaigns()

    def pick(self, pairs: tuple[tuple[object, int], ...]):
        """One value of (value, weight) pairs."""
        values, weights = zip(*pairs, strict=True)
        return self.rng.choices(values, weights=weights)[0]

    def message_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _catalog(self) -> list[_Product]:
        products = []
        number = 1001
        for category, (nouns, (low, high)) in CATEGORIES.items():
            for noun in nouns:
                adjective = self.rng.choice(PRODUCT_ADJECTIVES)
                price = round(self.rng.uniform(low, high)) - 0.01
                products.append(_Product(f"SKU-{number}", f"{adjective} {noun}", category, price))
                number += 1
        return products

    def _campaigns(self) -> list[_Campaign]:
        campaigns = []
        # Email newsletters twice a week at 09:00 UTC, pushes every five days at 17:00 UTC.
        for number, offset in enumerate(range(1, WINDOW_DAYS, 4), start=1):
            for day, channel, hour in ((offset, "email", 9), (offset + 2, "email", 9)):
                if day < WINDOW_DAYS:
                    sent_at = self.window_start + timedelta(days=day, hours=hour)
                    name = f"{CAMPAIGN_NAMES[(number + day) % len(CAMPAIGN_NAMES)]} #{len(campaigns) + 1}"
                    campaigns.append(
                        _Campaign(f"cmp_{len(campaigns) + 1:03d}", name, channel, sent_at)
                    )
        for day in range(3, WINDOW_DAYS, 5):
            sent_at = self.window_start + timedelta(days=day, hours=17)
            name = f"{self.rng.choice(CAMPAIGN_NAMES)} (push)"
            campaigns.append(_Campaign(f"cmp_{len(campaigns) + 1:03d}", name, "push", sent_at))
        return campaigns

    def zone(self, name: str) -> ZoneInfo:
        if name not in self.zones:
            self.zones[name] = ZoneInfo(name)
        return self.zones[name]

    # ----------------------------------------------------------------------- people

    def person(self, index: int) -> _Person:
        rng = self.rng
        country: _Country = self.pick(self.countries)
        zone = self.zone(self.pick(country.time_zones))
        locale = self.pick(country.locales)
        first_name = rng.choice(country.first_names)
        last_name = rng.choice(country.last_names)
        plan = self.pick(PLANS)
        has_app = rng.random() < 0.45

        anchor_local_date = self.anchor.astimezone(zone).date()
        days_ago = rng.randint(1, WINDOW_DAYS - 1)
        signup_date = anchor_local_date - timedelta(days=days_ago)
        activity = self.pick(self.activities)
        if days_ago > STREAK_MIN_DAYS + 1 and rng.random() < STREAK_CHANCE:
            activity = "streak"
        signup_at = self.local_time(zone, signup_date, streak=activity == "streak")

        email = self._email(first_name, last_name)
        phone = self._phone(country)
        anonymous_ids = [self.message_id()]
        if has_app:
            anonymous_ids.append(self.message_id())
        skew_seconds = rng.choice((0, 0, 0, 0, 0.4, -0.8, 2.5, -3, 95, -240))
        traits = {
            "first_name": first_name,
            "last_name": last_name,
            "name": f"{first_name} {last_name}",
            "email": email,
            "phone": phone,
            "country": country.code,
            "plan": plan,
            "signed_up_at": signup_at.isoformat().replace("+00:00", "Z"),
            "locale": locale,
            "time_zone": zone.key,
        }
        return _Person(
            index=index,
            user_id=f"user-{index + 1:05d}",
            anonymous_ids=anonymous_ids,
            zone=zone,
            locale=locale,
            country=country.code,
            activity=activity,
            signup_at=signup_at,
            signup_date=signup_date,
            days=days_ago + 1,
            has_app=has_app,
            email_opt_in=rng.random() < 0.85,
            push_opt_in=has_app and rng.random() < 0.7,
            favourite_category=rng.choice(tuple(CATEGORIES)),
            clock_skew=timedelta(seconds=skew_seconds),
            traits=traits,
        )

    def _phone(self, country: _Country) -> str:
        # The fictional ranges are small (100 numbers per US area code): after a few
        # draws a duplicate is accepted rather than looping on a full range.
        for _ in range(10):
            phone = country.phone(self.rng)
            if phone not in self.used_phones:
                break
        self.used_phones.add(phone)
        return phone

    def _email(self, first_name: str, last_name: str) -> str:
        domain = self.rng.choice(EMAIL_DOMAINS)
        local = f"{_ascii(first_name)}.{_ascii(last_name)}"
        email = f"{local}@{domain}"
        number = 2
        while email in self.used_emails:
            email = f"{local}{number}@{domain}"
            number += 1
        self.used_emails.add(email)
        return email

    def local_time(self, zone: ZoneInfo, day: date, *, streak: bool = False) -> datetime:
        """A moment of a local day at an active hour, in UTC. For streakers only hours
        whose UTC date is the same local date, so their daily streak holds in both."""
        rng = self.rng
        for _ in range(20):
            hour = self.pick(self.hours)
            moment = datetime.combine(day, time(hour), tzinfo=zone) + timedelta(
                seconds=rng.randrange(3600)
            )
            moment = moment.astimezone(UTC)
            if not streak or moment.date() == day:
                return moment
        # Every zone used here has at least one such active hour; find it.
        for hour in ACTIVE_HOURS:
            moment = datetime.combine(day, time(hour, 30), tzinfo=zone).astimezone(UTC)
            if moment.date() == day:
                return moment
        raise AssertionError(f"no active hour of {day} in {zone.key} falls on the same UTC date")

    # ----------------------------------------------------------------------- events

    def events(self, person: _Person) -> list[tuple[datetime, str, str, dict]]:
        """All events of one person: (time, type, name, properties), sorted by time."""
        rng = self.rng
        activity = ACTIVITIES[person.activity]
        events: list[tuple[datetime, str, str, dict]] = []
        platform = "ios" if person.has_app and rng.random() < 0.5 else "web"

        events.append((person.signup_at, IDENTIFY, "", dict(person.traits)))
        events.append(
            (
                person.signup_at,
                TRACK,
                "signed_up",
                {
                    "method": self.pick(SIGNUP_METHODS),
                    "plan": person.traits["plan"],
                    "platform": platform,
                },
            )
        )
        session_days, skipped_day = self._session_days(person, activity)
        purchase_days = self._purchase_days(person, activity, sorted(session_days), skipped_day)
        session_days |= purchase_days
        is_streak = person.activity == "streak"
        for day in sorted(session_days):
            if day == 0:
                starts = [person.signup_at + timedelta(seconds=2)]
            else:
                local_day = person.signup_date + timedelta(days=day)
                starts = [self.local_time(person.zone, local_day, streak=is_streak)]
                if person.activity == "regular" and rng.random() < 0.15:
                    starts.append(self.local_time(person.zone, local_day))
            for number, start in enumerate(sorted(starts)):
                purchase = day in purchase_days and number == 0
                events.extend(self._session(person, start, purchase=purchase))

        events.extend(self._campaign_events(person, activity))
        events.extend(self._support_and_reviews(person, events))
        events = [event for event in events if person.signup_at <= event[0] < self.anchor]
        events.sort(key=lambda event: event[0])
        return events

    def _session_days(self, person: _Person, activity: _Activity) -> tuple[set[int], int | None]:
        """Local day numbers (0 = signup day) with a session, and the day skipped on
        purpose: everyone but streakers skips one of days 1-9, so only streakers have
        a streak of 10 days since signup."""
        rng = self.rng
        days = {0}
        if person.activity == "streak":
            streak_days = rng.randint(STREAK_MIN_DAYS, person.days - 1)
            days.update(range(streak_days))
            start_after, skipped_day = streak_days, None
        else:
            start_after, skipped_day = 1, rng.randint(1, STREAK_MIN_DAYS - 1)
        for day in range(start_after, person.days):
            chance = activity.daily_session_chance
            if person.activity == "dormant" and day <= 3:
                chance = 0.35
            if rng.random() < chance and day != skipped_day:
                days.add(day)
        return days, skipped_day

    def _purchase_days(
        self, person: _Person, activity: _Activity, session_days: list[int], skipped_day: int | None
    ) -> set[int]:
        """Days with an order, on session days where possible. Weekly repeaters order
        again 1-7 days after the first order; other repeat orders come 8 or more days
        later. Never on the skipped day."""
        rng = self.rng
        if rng.random() >= activity.purchase_chance:
            return set()
        last_full_day = person.days - 2  # the anchor's local day is cut off at the anchor
        weekly_repeat = rng.random() < WEEKLY_REPEAT_CHANCE
        if weekly_repeat:
            candidates = [day for day in session_days if day < last_full_day]
            if not candidates:
                weekly_repeat = False
        if not weekly_repeat:
            candidates = [day for day in session_days if day <= last_full_day] or [0]
        first = rng.choice(candidates)
        days = {first}
        if weekly_repeat:
            week = range(first + 1, min(first + 7, last_full_day) + 1)
            later = [day for day in session_days if day in week]
            # Without a session that week, the second order gets a day of its own.
            later = later or [day for day in week if day != skipped_day]
            if later:
                days.add(rng.choice(later))
        elif rng.random() < LATER_REPEAT_CHANCE:
            later = [day for day in session_days if first + 8 <= day <= last_full_day]
            if later:
                days.add(rng.choice(later))
        return days

    def _session(self, person: _Person, start: datetime, *, purchase: bool) -> Iterator[tuple]:
        rng = self.rng
        platform = "ios" if person.has_app and rng.random() < 0.6 else "web"
        moment = start
        yield moment, TRACK, "logged_in", {"platform": platform}
        moment += timedelta(seconds=rng.uniform(1, 6))
        if platform == "web":
            yield (
                moment,
                PAGE,
                "Home",
                {"path": "/", "url": "https://shop.example.com/", "title": "Demo Shop"},
            )
        else:
            yield moment, SCREEN, "Home", {}
        viewed = [self._product(person) for _ in range(rng.choice((1, 1, 1, 2, 2, 2, 3, 3, 4)))]
        bought = viewed[: rng.choice((1, 1, 1, 2, 2, 3))] if purchase else []
        for product in viewed:
            moment += timedelta(seconds=rng.uniform(15, 150))
            yield (
                moment,
                TRACK,
                "product_viewed",
                {
                    "product_id": product.product_id,
                    "category": product.category,
                    "price": product.price,
                },
            )
        carted = bought or ([rng.choice(viewed)] if rng.random() < 0.2 else [])
        items = []
        for product in carted:
            moment += timedelta(seconds=rng.uniform(5, 60))
            quantity = 2 if rng.random() < 0.12 else 1
            items.append(
                {
                    "product_id": product.product_id,
                    "category": product.category,
                    "price": product.price,
                    "quantity": quantity,
                }
            )
            yield moment, TRACK, "added_to_cart", dict(items[-1])
        if not items or not (purchase or rng.random() < 0.35):
            return
        value = round(sum(item["price"] * item["quantity"] for item in items), 2)
        moment += timedelta(seconds=rng.uniform(20, 240))
        cart_id = f"cart-{next(self.carts):06d}"
        yield (
            moment,
            TRACK,
            "checkout_started",
            {"cart_id": cart_id, "value": value, "currency": CURRENCY, "item_count": len(items)},
        )
        if purchase:
            moment += timedelta(seconds=rng.uniform(30, 300))
            order = {
                "order_id": f"ORD-{next(self.orders)}",
                "revenue": value,
                "currency": CURRENCY,
                "items": items,
            }
            yield moment, TRACK, "order_completed", order

    def _product(self, person: _Person) -> _Product:
        if self.rng.random() < 0.5:
            return self.rng.choice(self.products_by_category[person.favourite_category])
        return self.rng.choice(self.products)

    def _campaign_events(self, person: _Person, activity: _Activity) -> Iterator[tuple]:
        rng = self.rng
        for campaign in self.campaigns:
            if campaign.sent_at <= person.signup_at:
                continue
            properties = {"campaign_id": campaign.campaign_id, "campaign_name": campaign.name}
            if campaign.channel == "email":
                if not person.email_opt_in or rng.random() >= activity.email_open_chance:
                    continue
                opened_at = campaign.sent_at + timedelta(
                    hours=min(rng.lognormvariate(0.3, 1.3), 72)
                )
                yield opened_at, TRACK, "email_opened", properties
                if rng.random() < 0.3:
                    clicked_at = opened_at + timedelta(seconds=rng.uniform(5, 400))
                    url = f"https://shop.example.com/c/{campaign.campaign_id}"
                    yield clicked_at, TRACK, "email_clicked", {**properties, "url": url}
            elif person.push_opt_in and rng.random() < activity.push_open_chance:
                opened_at = campaign.sent_at + timedelta(
                    minutes=min(rng.lognormvariate(2, 1.2), 600)
                )
                yield opened_at, TRACK, "push_opened", properties

    def _support_and_reviews(self, person: _Person, events: list[tuple]) -> Iterator[tuple]:
        rng = self.rng
        orders = [event for event in events if event[2] == "order_completed"]
        ticket_chance = 0.18 if orders else 0.08
        if rng.random() < ticket_chance:
            sessions = [event[0] for event in events if event[2] == "logged_in"]
            for _ in range(2 if rng.random() < 0.2 else 1):
                at = rng.choice(sessions) + timedelta(seconds=rng.uniform(60, 900))
                topic = (
                    self.pick(TICKET_TOPICS)
                    if orders
                    else rng.choice(("account", "product_question", "billing"))
                )
                yield (
                    at,
                    TRACK,
                    "support_ticket",
                    {
                        "ticket_id": f"TCK-{next(self.tickets)}",
                        "topic": topic,
                        "priority": rng.choice(("low", "normal", "normal", "high")),
                    },
                )
        for order_at, _, _, order in orders:
            if rng.random() < 0.35:
                item = rng.choice(order["items"])
                at = order_at + timedelta(days=rng.uniform(2, 10))
                rating = self.pick(RATINGS)
                yield (
                    at,
                    TRACK,
                    "review_written",
                    {
                        "product_id": item["product_id"],
                        "order_id": order["order_id"],
                        "rating": rating,
                    },
                )


# --------------------------------------------------------------------------- loading


def _anchor() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# (column, PostgreSQL type) in COPY order. Binary COPY: PostgreSQL applies no casts, so
# the types must match the table; in exchange it skips text parsing, and psycopg encodes
# timezone-aware datetimes about ten times faster than in text format.
PROFILE_COLUMNS = (
    ("id", "int8"),
    ("workspace_id", "int8"),
    ("user_id", "varchar"),
    ("anonymous_ids", "varchar[]"),
    ("traits", "jsonb"),
    ("email", "varchar"),
    ("phone", "varchar"),
    ("time_zone", "varchar"),
    ("locale", "varchar"),
    ("first_seen", "timestamptz"),
    ("last_seen", "timestamptz"),
    ("created_at", "timestamptz"),
)
IDENTITY_COLUMNS = (
    ("workspace_id", "int8"),
    ("kind", "varchar"),
    ("value", "varchar"),
    ("profile_id", "int8"),
    ("created_at", "timestamptz"),
)
EVENT_COLUMNS = (
    ("workspace_id", "int8"),
    ("profile_id", "int8"),
    ("type", "varchar"),
    ("name", "varchar"),
    ("properties", "jsonb"),
    ("context", "jsonb"),
    ("message_id", "varchar"),
    ("timestamp", "timestamptz"),
    ("original_timestamp", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("received_at", "timestamptz"),
)


@contextmanager
def _binary_copy(cursor: psycopg.Cursor, table: str, columns: tuple[tuple[str, str], ...]):
    names = ", ".join(name for name, _ in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([pg_type for _, pg_type in columns])
        yield copy


@transaction.atomic
def demo_dataset_load(*, workspace: Workspace, profile_count: int, seed: int) -> dict[str, int]:
    """Replace the workspace's profiles and events with `profile_count` generated
    profiles and about 40 events each. Idempotent: a rerun deletes the previous rows
    first, in the same transaction."""
    # Events first: that delete is one statement, and the Profile delete then finds no
    # events left to cascade to.
    Event.objects.filter(workspace=workspace).delete()
    Profile.objects.filter(workspace=workspace).delete()

    generator = _DemoGenerator(seed=seed, anchor=_anchor())
    event_partitions_ensure(start=generator.anchor - timedelta(days=70))
    people = [generator.person(index) for index in range(profile_count)]
    event_count = 0

    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # the psycopg 3 cursor, for COPY
        set_json_dumps(orjson.dumps, context=cursor)  # dicts go to jsonb columns as they are
        # Reserve the ids up front, so each profile's events can follow it in the stream.
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('segments_profile', 'id')) "
            "FROM generate_series(1, %s)",
            [profile_count],
        )
        profile_ids = sorted(row[0] for row in cursor.fetchall())

        # first_seen / last_seen are set from the events once those are written.
        with _binary_copy(cursor, "segments_profile", PROFILE_COLUMNS) as copy:
            for person, profile_id in zip(people, profile_ids, strict=True):
                traits = person.traits
                copy.write_row(
                    (
                        profile_id,
                        workspace.pk,
                        person.user_id,
                        person.anonymous_ids,
                        traits,
                        traits["email"],
                        traits["phone"],
                        person.zone.key,
                        person.locale,
                        person.signup_at,
                        person.signup_at,
                        person.signup_at,
                    )
                )

        # Every id a profile is known by resolves to it, as ingestion would have recorded.
        with _binary_copy(cursor, "segments_identity", IDENTITY_COLUMNS) as copy:
            for person, profile_id in zip(people, profile_ids, strict=True):
                copy.write_row(
                    (
                        workspace.pk,
                        Identity.Kind.USER_ID.value,
                        person.user_id,
                        profile_id,
                        person.signup_at,
                    )
                )
                for anonymous_id in person.anonymous_ids:
                    copy.write_row(
                        (
                            workspace.pk,
                            Identity.Kind.ANONYMOUS_ID.value,
                            anonymous_id,
                            profile_id,
                            person.signup_at,
                        )
                    )

        with _binary_copy(cursor, "segments_event", EVENT_COLUMNS) as copy:
            for person, profile_id in zip(people, profile_ids, strict=True):
                for row in _event_rows(
                    generator, person, workspace_id=workspace.pk, profile_id=profile_id
                ):
                    copy.write_row(row)
                    event_count += 1

        cursor.execute(
            """
            UPDATE segments_profile AS profile
               SET first_seen = seen.first_seen, last_seen = seen.last_seen
              FROM (SELECT profile_id, min(timestamp) AS first_seen, max(timestamp) AS last_seen
                      FROM segments_event WHERE workspace_id = %s GROUP BY profile_id) AS seen
             WHERE profile.id = seen.profile_id
            """,
            [workspace.pk],
        )
        # Fresh statistics, so the first queries on the new rows get good plans.
        cursor.execute("ANALYZE segments_profile")
        cursor.execute("ANALYZE segments_event")

    return {"profiles": profile_count, "events": event_count}


def _event_rows(
    generator: _DemoGenerator, person: _Person, *, workspace_id: int, profile_id: int
) -> Iterator[tuple]:
    rng = generator.rng
    for moment, event_type, name, properties in generator.events(person):
        # SDKs send milliseconds. Segment's correction is timestamp = received_at -
        # (sent_at - original_timestamp): the device clock is off by clock_skew, the SDK
        # flushes its batch a few seconds later and the network takes some milliseconds.
        timestamp = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        latency = timedelta(milliseconds=round(rng.uniform(20, 400)))
        flush_delay = timedelta(milliseconds=round(rng.uniform(0, 10_000)))
        original_timestamp = timestamp - latency + person.clock_skew
        received_at = timestamp + flush_delay
        sent_at = original_timestamp + flush_delay
        yield (
            workspace_id,
            profile_id,
            event_type,
            name,
            properties,
            EVENT_CONTEXT,
            generator.message_id(),
            timestamp,
            original_timestamp,
            sent_at,
            received_at,
        )


# The two examples of the product brief, and a value-tier style rule, as saved segments.
DEMO_SEGMENTS = [
    (
        "Logged in every day since signup, 10 days straight",
        "The brief's streak example: a logged_in event on each of the first 10 local days after signup.",
        {"type": "streak", "event": "logged_in", "days": 10, "since_signup": True},
    ),
    (
        "Bought again within a week of the first purchase",
        "The brief's sequence example: a second order_completed within 7 days after the first one.",
        {
            "type": "sequence",
            "first": {"event": "order_completed"},
            "then": {"event": "order_completed"},
            "within_hours": 168,
            "anchor": "first",
        },
    ),
    (
        "Pro plan, no order in the last 30 days",
        "Paying customers drifting away: plan is pro and their last order is 30+ days old.",
        {
            "type": "and",
            "rules": [
                {"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
                {
                    "type": "recency",
                    "event": "order_completed",
                    "which": "last",
                    "op": "not_within_last_days",
                    "value": 30,
                },
            ],
        },
    ),
]


def demo_segments_create(*, workspace: Workspace) -> int:
    """Create (or reset) the demo segments and compute their members."""
    from segments.membership import segment_membership_refresh
    from segments.models import Segment
    from segments.rules import parse_definition

    for name, description, definition in DEMO_SEGMENTS:
        parse_definition(definition)  # a broken example fails the demo load loudly
        segment, _ = Segment.objects.update_or_create(
            workspace=workspace,
            name=name,
            defaults={"description": description, "definition": definition},
        )
        segment_membership_refresh(segment=segment)
    return len(DEMO_SEGMENTS)

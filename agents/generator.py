"""Deterministic, streaming generator of realistic agent rows (CSV, XLSX, JSON).

Used by `manage.py generate_agents` and by tests and benchmarks of the import
path. Everything is a pure function of (count, seed, invalid_rate):

* row content comes from one `random.Random(seed)` stream, consumed the same
  way for every row, so row *i* is identical whatever `count` or
  `invalid_rate` is (unless row *i* is one of the invalid rows);
* which rows are invalid comes from a second, separate stream
  (`invalid_rows_plan`), so callers can know the invalid rows without
  generating anything;
* ids and licence numbers are bijections of the row index, so they are
  unique within a file by construction, not by luck;
* nothing reads the clock, and only tuples and insertion-ordered dicts are
  iterated.

Rows stream: memory stays flat whatever `count` is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import unicodedata
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate, permutations
from pathlib import Path
from random import Random
from typing import IO, TYPE_CHECKING, Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from industries.constants import AGENT_STATUSES, SUBSCRIPTION_TIERS, US_STATES
from industries.seed import INDUSTRIES

from .models import Agent

if TYPE_CHECKING:
    from industries.selectors import IndustryRule

DEFAULT_SEED = 42
FORMATS = ("csv", "xlsx", "json")
# Licence serials are a permutation of the row index modulo this (see _license_serial).
MAX_COUNT = 90_000_000
XLSX_MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows minus the header.
# Reference year for "joined in ..." bios: fixed, never the clock.
REFERENCE_YEAR = 2025

AGENT_FILE_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "email",
    "phone",
    "license_number",
    "mls_id",
    "state",
    "city",
    "brokerage",
    "bio",
    "status",
    "ghost_profile",
    "source",
    "primary_region",
    "service_zipcodes",
    "service_radius_miles",
    "primary_specialty",
    "language_capabilities",
    "years_experience",
    "transactions_ytd",
    "total_volume_sold",
    "subscription_tier",
    "industry",
    "profession",
    "specializations",
    "price_ranges",
)


def _file_columns_of_type(*internal_types: str) -> frozenset[str]:
    # The cell format of a column follows its model field, so a retyped field cannot drift from here.
    types = {f.column: f.get_internal_type() for f in Agent._meta.concrete_fields}
    return frozenset(c for c in AGENT_FILE_COLUMNS if types[c] in internal_types)


JSON_COLUMNS = _file_columns_of_type("JSONField")
INTEGER_COLUMNS = _file_columns_of_type("IntegerField", "BigIntegerField", "SmallIntegerField")
BOOLEAN_COLUMNS = _file_columns_of_type("BooleanField")
DECIMAL_COLUMNS = _file_columns_of_type("DecimalField")


# --------------------------------------------------------------------------------------
# Invalid rows
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvalidKind:
    kind: str
    column: str
    description: str


# Cycled in this order over the invalid rows: the j-th invalid row gets kind j % 9.
INVALID_KINDS: tuple[InvalidKind, ...] = (
    InvalidKind("bad_state", "state", 'state is "ZZ", not a US state code'),
    InvalidKind("unknown_industry", "industry", 'industry is "astrology", not a configured industry'),
    InvalidKind("wrong_profession", "profession", "profession belongs to another industry"),
    # Not a licence that breaks its industry's pattern: that is a warning, never a reject
    # (DESIGN.md: the live D1 breaks every pattern), so it cannot make a row invalid.
    InvalidKind(
        "bad_price_ranges", "price_ranges", 'price_ranges is a JSON list (["250000-500000"]), not an object'
    ),
    InvalidKind("bad_email", "email", 'email is "not-an-email"'),
    InvalidKind(
        "bad_json",
        "service_zipcodes",
        'malformed JSON ["90210" in CSV/XLSX; a JSON string instead of a list in JSON output',
    ),
    InvalidKind("negative_number", "years_experience", "years_experience is -3"),
    InvalidKind("bad_tier", "subscription_tier", 'subscription_tier is "platinum"'),
    InvalidKind("missing_name", "name", "name is empty"),
)
INVALID_KIND_COLUMNS: dict[str, str] = {k.kind: k.column for k in INVALID_KINDS}


def invalid_count(*, count: int, invalid_rate: float) -> int:
    """How many of `count` rows are invalid: round(count * rate), exactly."""
    if not 0 <= invalid_rate <= 1:
        raise ValueError(f"invalid_rate must be between 0 and 1, got {invalid_rate}")
    return min(count, round(count * invalid_rate))


def invalid_rows_plan(*, count: int, seed: int, invalid_rate: float) -> Iterator[tuple[int, str]]:
    """Yield (row index, kind) of the invalid rows, in index order, in O(1) memory.

    Exactly `invalid_count()` rows are chosen, uniformly at random by selection
    sampling (Knuth's algorithm S) on an rng of their own; kinds cycle through
    INVALID_KINDS so every kind appears once there are nine invalid rows.
    """
    needed = invalid_count(count=count, invalid_rate=invalid_rate)
    rng = Random(f"estateflow-invalid-rows:{seed}")
    chosen = 0
    for index in range(count):
        if needed == 0:
            return
        if rng.random() * (count - index) < needed:
            yield index, INVALID_KINDS[chosen % len(INVALID_KINDS)].kind
            chosen += 1
            needed -= 1


def invalid_rows_expected(*, count: int, seed: int, invalid_rate: float) -> dict[int, str]:
    """{row index: kind} of the invalid rows (materialised; for tests and reports)."""
    return dict(invalid_rows_plan(count=count, seed=seed, invalid_rate=invalid_rate))


# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------


def _weighted(pairs: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    return tuple(p[0] for p in pairs), tuple(accumulate(p[1] for p in pairs))


# Heavy weights on a few common names: at 500k rows there are thousands of "John Smith".
_FIRST_NAMES = _weighted(
    (
        ("John", 60), ("Michael", 30), ("David", 25), ("James", 25), ("Robert", 20), ("Mary", 25),
        ("Jennifer", 20), ("Linda", 12), ("Maria", 20), ("Sarah", 15), ("William", 15), ("Elizabeth", 12),
        ("Jessica", 10), ("Christopher", 10), ("Daniel", 12), ("Ashley", 8), ("Matthew", 10), ("Emily", 10),
        ("Thomas", 8), ("Patricia", 8), ("Wei", 5), ("Priya", 5), ("Mohammed", 5), ("Aisha", 4),
        ("José", 12), ("Zoë", 5), ("Chloé", 4), ("Renée", 5), ("André", 5), ("Björn", 3), ("Søren", 3),
        ("Inés", 4), ("François", 4), ("Jürgen", 3), ("Łukasz", 3), ("Siobhán", 3), ("Seán", 3),
        ("Ana Lucía", 3), ("Mary-Kate", 3), ("Jean-Luc", 3), ("Anne-Marie", 3), ("D'Andre", 3),
        ("Nguyễn Văn", 2), ("Yūko", 2), ("Raúl", 4), ("Jesús", 4), ("Noémie", 2), ("Håkon", 2),
    )
)  # fmt: skip
_LAST_NAMES = _weighted(
    (
        ("Smith", 60), ("Johnson", 25), ("Williams", 22), ("Brown", 20), ("Jones", 20), ("Garcia", 18),
        ("Miller", 15), ("Davis", 15), ("Rodriguez", 14), ("Martinez", 14), ("Hernández", 10),
        ("Lopez", 10), ("Wilson", 10), ("Anderson", 8), ("Taylor", 8), ("Thomas", 8), ("Lee", 10),
        ("Kim", 8), ("Patel", 8), ("Chen", 8), ("Nguyen", 8), ("Wang", 6), ("Núñez", 6), ("Peña", 5),
        ("Østergaard", 3), ("O'Brien", 6), ("D'Angelo", 5), ("O'Connor", 5), ("McDonald", 5),
        ("Müller", 4), ("Gonçalves", 3), ("Lefèvre", 3), ("Dubois", 3), ("Kowalski", 4), ("Wójcik", 2),
        ("Søndergaard", 2), ("Ibáñez", 3), ("Çelik", 2), ("Van der Berg", 3), ("de la Cruz", 4),
        ("St. James", 2), ("Nakamura", 3), ("Ahmed", 4), ("Okafor", 3), ("Björklund", 2), ("Þórsson", 1),
    )
)  # fmt: skip
_MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"
_SUFFIXES = (", Jr.", ", Sr.", " III", " II", ", Jr.")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "agents.example.net")
_LANGUAGES = (
    "Spanish", "Chinese", "Vietnamese", "Tagalog", "French", "Korean", "Arabic", "Portuguese",
    "Russian", "German", "Haitian Creole", "American Sign Language",
)  # fmt: skip
_SOURCES = _weighted(
    (("generated", 50), ("csv_import", 20), ("manual", 10), ("referral", 10), ("web_directory", 10))
)
_STATUSES = _weighted(tuple(zip(AGENT_STATUSES, (80, 8, 8, 4), strict=True)))
_PAID_TIERS = _weighted(tuple(zip(SUBSCRIPTION_TIERS, (10, 40, 28, 15, 7), strict=True)))
_RADII = (5, 10, 15, 25, 25, 25, 30, 50, 75, 100)

# state -> (area codes, ((city, 3-digit zip prefix), ...)); keys must equal US_STATES.
STATE_PLACES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "AL": (("205", "251", "334"), (("Birmingham", "352"), ("Montgomery", "361"), ("Mobile", "366"))),
    "AK": (("907",), (("Anchorage", "995"), ("Fairbanks", "997"), ("Juneau", "998"))),
    "AZ": (("602", "480", "520"), (("Phoenix", "850"), ("Tucson", "857"), ("Mesa", "852"))),
    "AR": (("501", "479"), (("Little Rock", "722"), ("Fayetteville", "727"))),
    "CA": (("213", "415", "619", "408", "916"), (("Los Angeles", "900"), ("San Francisco", "941"), ("San Diego", "921"), ("San José", "951"), ("Sacramento", "958"))),
    "CO": (("303", "719"), (("Denver", "802"), ("Colorado Springs", "809"), ("Boulder", "803"))),
    "CT": (("860", "203"), (("Hartford", "061"), ("New Haven", "065"), ("Stamford", "069"))),
    "DE": (("302",), (("Wilmington", "198"), ("Dover", "199"))),
    "FL": (("305", "407", "813", "904"), (("Miami", "331"), ("Orlando", "328"), ("Tampa", "336"), ("Jacksonville", "322"))),
    "GA": (("404", "912", "706"), (("Atlanta", "303"), ("Savannah", "314"), ("Augusta", "309"))),
    "HI": (("808",), (("Honolulu", "968"), ("Hilo", "967"))),
    "ID": (("208",), (("Boise", "837"), ("Coeur d'Alene", "838"))),
    "IL": (("312", "217", "630"), (("Chicago", "606"), ("Springfield", "627"), ("Naperville", "605"))),
    "IN": (("317", "260"), (("Indianapolis", "462"), ("Fort Wayne", "468"))),
    "IA": (("515", "319"), (("Des Moines", "503"), ("Cedar Rapids", "524"))),
    "KS": (("316", "913"), (("Wichita", "672"), ("Overland Park", "662"))),
    "KY": (("502", "859"), (("Louisville", "402"), ("Lexington", "405"))),
    "LA": (("504", "225"), (("New Orleans", "701"), ("Baton Rouge", "708"))),
    "ME": (("207",), (("Portland", "041"), ("Bangor", "044"))),
    "MD": (("410", "443"), (("Baltimore", "212"), ("Annapolis", "214"))),
    "MA": (("617", "508", "413"), (("Boston", "021"), ("Worcester", "016"), ("Springfield", "011"))),
    "MI": (("313", "616", "734"), (("Detroit", "482"), ("Grand Rapids", "495"), ("Ann Arbor", "481"))),
    "MN": (("612", "651"), (("Minneapolis", "554"), ("Saint Paul", "551"))),
    "MS": (("601", "228"), (("Jackson", "392"), ("Gulfport", "395"))),
    "MO": (("816", "314"), (("Kansas City", "641"), ("St. Louis", "631"))),
    "MT": (("406",), (("Billings", "591"), ("Missoula", "598"))),
    "NE": (("402",), (("Omaha", "681"), ("Lincoln", "685"))),
    "NV": (("702", "775"), (("Las Vegas", "891"), ("Reno", "895"))),
    "NH": (("603",), (("Manchester", "031"), ("Concord", "033"))),
    "NJ": (("201", "973", "609"), (("Newark", "071"), ("Jersey City", "073"), ("Princeton", "085"))),
    "NM": (("505",), (("Albuquerque", "871"), ("Santa Fe", "875"), ("Española", "875"))),
    "NY": (("212", "716", "585", "518"), (("New York", "100"), ("Buffalo", "142"), ("Rochester", "146"), ("Albany", "122"))),
    "NC": (("704", "919", "828"), (("Charlotte", "282"), ("Raleigh", "276"), ("Asheville", "288"))),
    "ND": (("701",), (("Fargo", "581"), ("Bismarck", "585"))),
    "OH": (("614", "216", "513"), (("Columbus", "432"), ("Cleveland", "441"), ("Cincinnati", "452"))),
    "OK": (("405", "918"), (("Oklahoma City", "731"), ("Tulsa", "741"))),
    "OR": (("503", "541"), (("Portland", "972"), ("Eugene", "974"))),
    "PA": (("215", "412"), (("Philadelphia", "191"), ("Pittsburgh", "152"))),
    "RI": (("401",), (("Providence", "029"), ("Newport", "028"))),
    "SC": (("843", "803"), (("Charleston", "294"), ("Columbia", "292"))),
    "SD": (("605",), (("Sioux Falls", "571"), ("Rapid City", "577"))),
    "TN": (("615", "901", "865"), (("Nashville", "372"), ("Memphis", "381"), ("Knoxville", "379"))),
    "TX": (("713", "214", "512", "210"), (("Houston", "770"), ("Dallas", "752"), ("Austin", "787"), ("San Antonio", "782"))),
    "UT": (("801",), (("Salt Lake City", "841"), ("Provo", "846"))),
    "VT": (("802",), (("Burlington", "054"), ("Montpelier", "056"))),
    "VA": (("804", "757", "703"), (("Richmond", "232"), ("Virginia Beach", "234"), ("Arlington", "222"))),
    "WA": (("206", "509", "253"), (("Seattle", "981"), ("Spokane", "992"), ("Tacoma", "984"))),
    "WV": (("304",), (("Charleston", "253"), ("Morgantown", "265"))),
    "WI": (("414", "608"), (("Milwaukee", "532"), ("Madison", "537"))),
    "WY": (("307",), (("Cheyenne", "820"), ("Casper", "826"))),
    "DC": (("202",), (("Washington", "200"),)),
    "AS": (("684",), (("Pago Pago", "967"),)),
    "GU": (("671",), (("Hagåtña", "969"), ("Dededo", "969"))),
    "MP": (("670",), (("Saipan", "969"),)),
    "PR": (("787", "939"), (("San Juan", "009"), ("Ponce", "007"), ("Mayagüez", "006"))),
    "VI": (("340",), (("Charlotte Amalie", "008"), ("Christiansted", "008"))),
}  # fmt: skip
# Mild population weighting; every state and territory still appears at a few thousand rows.
_BIG_STATES = {"CA": 5, "TX": 4, "FL": 4, "NY": 4, "IL": 2, "PA": 2, "OH": 2, "GA": 2, "NC": 2}
_STATES = _weighted(tuple((code, _BIG_STATES.get(code, 1)) for code in US_STATES))
_INDUSTRY_WEIGHTS = {
    "real_estate": 40,
    "insurance": 15,
    "mortgage": 12,
    "financial": 10,
    "legal": 10,
    "contractor": 13,
}
_BROKERAGES: dict[str, tuple[str, ...]] = {
    "real_estate": ("{last} Realty", "{last} & Associates Real Estate", "{city} Home Partners",
                    "Blue Door Realty, LLC", "Keystone Properties Group", "{last} Team at Harbor Realty"),
    "legal": ("{last} & {last2} LLP", "Law Offices of {first} {last}", "{last} Legal Group, P.C.",
              "{city} Legal Aid Clinic"),
    "insurance": ("{last} Insurance Agency", "{city} Mutual Insurance Brokers", "Shield & Anchor Insurance",
                  "{last} Family Insurance, Inc."),
    "mortgage": ("{last} Home Lending", "{city} Mortgage Co.", "Summit Lending, Inc.", "Front Porch Mortgage"),
    "financial": ("{last} Wealth Partners", "{last} Financial Advisors, LLC", "Harbor Point Capital",
                  "{city} Tax & Planning"),
    "contractor": ("{last} Plumbing & Heating", "{city} Roofing Co.", "{last} Bros. Electric",
                   "Handy Helpers, Inc.", "{last} Home Services"),
}  # fmt: skip
_BIO_TEMPLATES = (
    "{name} has served clients in {city} for {years} years.",
    'Known around {city} as "the one who always picks up the phone," {first} focuses on {specs}.',
    "{first} joined {firm} in {joined}.\nSpecialties: {specs}.\nLanguages: {langs}.",
    "Licensed in {state_name}, {first} handles {specs} \u2014 and still answers e-mail on weekends.",
    'My clients say it best: "{first} made the whole process painless." Serving {region}, {city}, and nearby towns.',
    "Born and raised in {city}, {state}. {years}+ years in {industry}; {transactions} clients served this year.\n\n"
    'Favourite saying: "Measure twice, sign once."',
    "{first}'s approach: listen first, then act. Focus areas: {specs}.",
)
_LICENSE_STRIDE = 55_623_457  # coprime with MAX_COUNT (= 2^7 * 3^2 * 5^7), so the serial is a permutation
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class _Industry:
    slug: str
    display: str
    professions: tuple[str, ...]
    specializations: tuple[str, ...]
    foreign_professions: tuple[str, ...]  # professions of other industries only
    specialization_choices: tuple[tuple[tuple[str, ...], ...], ...]  # [k] -> all k-permutations, k = 0..3
    brokerages: tuple[str, ...]


def _industries() -> tuple[tuple[str, ...], tuple[int, ...], dict[str, _Industry]]:
    every_profession = tuple(dict.fromkeys(p for ind in INDUSTRIES for p in ind["professions"]))
    by_slug = {}
    for ind in INDUSTRIES:
        own = ind["professions"]
        by_slug[ind["industry"]] = _Industry(
            slug=ind["industry"],
            display=ind["display_name"],
            professions=tuple(own),
            specializations=tuple(ind["specializations"]),
            foreign_professions=tuple(p for p in every_profession if p not in own),
            specialization_choices=tuple(
                tuple(permutations(ind["specializations"], k))
                for k in range(min(3, len(ind["specializations"])) + 1)
            ),
            brokerages=_BROKERAGES.get(ind["industry"], ("{last} & Co.",)),
        )
    slugs, cum = _weighted(tuple((slug, _INDUSTRY_WEIGHTS.get(slug, 10)) for slug in by_slug))
    return slugs, cum, by_slug


_INDUSTRY_SLUGS, _INDUSTRY_CUM, _INDUSTRY_DATA = _industries()


def industry_rules_from_seed() -> dict[str, IndustryRule]:
    """The six seeded industries as validation rules, without touching the database."""
    import re

    from industries.selectors import IndustryRule

    return {
        ind["industry"]: IndustryRule(
            industry=ind["industry"],
            display_name=ind["display_name"],
            enabled=True,
            professions=frozenset(ind["professions"]),
            license_label=ind["license_label"],
            license_re=re.compile(ind["license_pattern"]) if ind["license_pattern"] else None,
        )
        for ind in INDUSTRIES
    }


# --------------------------------------------------------------------------------------
# Row generation
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class GeneratedRow:
    index: int
    values: dict[str, Any]  # typed: str/None, int, bool, Decimal, list, dict
    invalid_kind: str | None = None

    @property
    def invalid_column(self) -> str | None:
        return INVALID_KIND_COLUMNS[self.invalid_kind] if self.invalid_kind else None


def _pick(rng: Random, table: tuple[tuple[str, ...], tuple[int, ...]]) -> str:
    population, cum = table
    return population[bisect(cum, rng.random() * cum[-1])]


@lru_cache(maxsize=64)
def _seed_key(seed: int, purpose: str) -> int:
    digest = hashlib.blake2b(f"{purpose}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit integers."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def agent_id_for(*, seed: int, index: int) -> str:
    """ "agt-" + 16 hex digits; a bijection of the index for a given seed, so unique per file."""
    return f"agt-{_mix64((index + _seed_key(seed, 'agent-id')) & _MASK64):016x}"


def _license_serial(index: int, offset: int) -> int:
    """A permutation of 0..MAX_COUNT-1: distinct rows get distinct serials."""
    return (index * _LICENSE_STRIDE + offset) % MAX_COUNT


def _license_number(industry: str, state: str, serial: int) -> str:
    if industry == "mortgage":  # NMLS ID: digits, no leading zero, 1-12
        return str(10_000_000 + serial)
    if industry == "insurance":  # NPN: digits, up to 10
        return str(serial + 1)
    if industry == "financial":  # FINRA CRD: digits, up to 8
        return str(10_000_000 + serial)
    if industry == "real_estate":
        return f"{state}-RE-{serial:08d}" if serial % 3 else f"{state}-SL{serial:08d}"
    if industry == "legal":
        return f"BAR-{serial:06d}" if serial % 2 else f"{state}-BAR-{serial:06d}"
    return f"LIC-{state}-{serial:05d}"  # contractor and any future free-text industry


@lru_cache(maxsize=4096)
def _email_token(text: str) -> str:
    """ASCII-fold a name part for an e-mail local part: "Núñez" -> "nunez", "O'Brien" -> "obrien"."""
    folded = text.translate(_FOLD_EXTRA)
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode().lower()
    cleaned = "".join(ch if ch.isalnum() else "-" if ch in " -" else "" for ch in folded)
    return "-".join(part for part in cleaned.split("-") if part)


_FOLD_EXTRA = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d", "þ": "th", "Þ": "Th"}
)


def _industry_fields(
    rng: Random, ind: _Industry, *, state: str, city: str, first: str, last: str, serial: int
) -> dict[str, Any]:
    """The columns that depend on the industry (so an invalid row can switch industry coherently)."""
    profession = ind.professions[int(rng.random() * len(ind.professions))]
    # 0..3 distinct specializations in random order (precomputed permutations: cheaper than sample()).
    choices = ind.specialization_choices[int(rng.random() * len(ind.specialization_choices))]
    specializations = list(choices[int(rng.random() * len(choices))])
    template = ind.brokerages[int(rng.random() * len(ind.brokerages))]
    last2 = _pick(rng, _LAST_NAMES)
    brokerage = template.format(last=last, last2=last2, first=first, city=city)
    has_brokerage = rng.random() < 0.9
    mls_roll = rng.randrange(100_000, 10_000_000)
    if ind.slug == "real_estate":
        price_min = rng.choice((0, 100_000, 150_000, 250_000, 400_000, 750_000))
        price_ranges = {"min": price_min, "max": price_min * 3 + 250_000}
    elif ind.slug == "mortgage":
        price_ranges = {"min_loan": 50_000, "max_loan": rng.choice((726_200, 1_089_300, 3_000_000))}
    else:
        price_ranges = {} if rng.random() < 0.7 else {"min_fee": rng.choice((0, 100, 250, 500))}
    return {
        "industry": ind.slug,
        "profession": profession,
        "specializations": specializations,
        "primary_specialty": specializations[0] if specializations else "general",
        "brokerage": brokerage if has_brokerage else None,
        "mls_id": f"MLS{mls_roll}" if ind.slug == "real_estate" and mls_roll % 7 else None,
        "license_number": _license_number(ind.slug, state, serial),
        "price_ranges": price_ranges,
    }


def _row_values(rng: Random, *, index: int, seed: int, license_offset: int) -> dict[str, Any]:
    ind = _INDUSTRY_DATA[_INDUSTRY_SLUGS[bisect(_INDUSTRY_CUM, rng.random() * _INDUSTRY_CUM[-1])]]
    state = _pick(rng, _STATES)
    area_codes, places = STATE_PLACES[state]
    city, zip3 = places[int(rng.random() * len(places))]

    first = _pick(rng, _FIRST_NAMES)
    last = _pick(rng, _LAST_NAMES)
    roll = rng.random()
    if roll < 0.06:
        other = _pick(rng, _LAST_NAMES)
        if other != last:
            last = f"{last}-{other}"
    middle = _MIDDLE_INITIALS[int(rng.random() * len(_MIDDLE_INITIALS))]
    name = f"{first} {middle}. {last}" if rng.random() < 0.12 else f"{first} {last}"
    if rng.random() < 0.05:
        name += _SUFFIXES[int(rng.random() * len(_SUFFIXES))]

    first_token, last_token = _email_token(first) or "agent", _email_token(last) or "pro"
    style = int(rng.random() * 5)
    number = rng.randrange(1, 1000)
    local = (
        f"{first_token}.{last_token}",
        f"{first_token}{last_token}{number}",
        f"{first_token[0]}{last_token}",
        f"{first_token}_{last_token}{number % 100}",
        f"{last_token}.{first_token}{number}",
    )[style]
    email = f"{local}@{_EMAIL_DOMAINS[int(rng.random() * len(_EMAIL_DOMAINS))]}"
    phone = f"+1 {area_codes[int(rng.random() * len(area_codes))]}-555-01{int(rng.random() * 100):02d}"

    fields = _industry_fields(
        rng,
        ind,
        state=state,
        city=city,
        first=first,
        last=last,
        serial=_license_serial(index, license_offset),
    )

    years = int(rng.triangular(0, 40, 5))
    sells_property = ind.slug in ("real_estate", "mortgage")
    transactions = int(rng.random() * (60 if sells_property else 250))
    cents = transactions * rng.randrange(9_000_000, 120_000_000) if sells_property else 0  # $90k-$1.2M each
    ghost = rng.random() < 0.7
    tier = "ghost" if ghost else _pick(rng, _PAID_TIERS)
    # 1-5 distinct zip codes of the city's prefix: a start and a stride (4 * 19 < 100 keeps them distinct).
    zip_count = 1 + int(rng.random() * 5)
    start, stride = int(rng.random() * 100), 1 + int(rng.random() * 19)
    zipcodes = [f"{zip3}{n:02d}" for n in sorted((start + i * stride) % 100 for i in range(zip_count))]
    languages = ["English"]
    if rng.random() < 0.25:
        extra = _LANGUAGES[int(rng.random() * len(_LANGUAGES))]
        languages = [extra, "English"] if rng.random() < 0.4 else ["English", extra]
    region = (f"{city} Metro", f"Greater {city}", f"Downtown {city}", f"{US_STATES[state]} statewide")[
        int(rng.random() * 4)
    ]

    bio = None
    if rng.random() < 0.85:
        spec_words = ", ".join(s.replace("_", " ") for s in fields["specializations"]) or "general work"
        bio = _BIO_TEMPLATES[int(rng.random() * len(_BIO_TEMPLATES))].format(
            name=name,
            first=first,
            city=city,
            state=state,
            state_name=US_STATES[state],
            years=years,
            joined=REFERENCE_YEAR - years,
            specs=spec_words,
            langs=", ".join(languages),
            firm=fields["brokerage"] or "an independent practice",
            region=region,
            industry=ind.display.lower(),
            transactions=transactions,
        )

    return {
        "id": agent_id_for(seed=seed, index=index),
        "name": name,
        "email": email,
        "phone": phone if rng.random() < 0.95 else None,
        "license_number": fields["license_number"],
        "mls_id": fields["mls_id"],
        "state": state,
        "city": city,
        "brokerage": fields["brokerage"],
        "bio": bio,
        "status": _pick(rng, _STATUSES),
        "ghost_profile": ghost,
        "source": _pick(rng, _SOURCES),
        "primary_region": region,
        "service_zipcodes": zipcodes,
        "service_radius_miles": _RADII[int(rng.random() * len(_RADII))],
        "primary_specialty": fields["primary_specialty"],
        "language_capabilities": languages,
        "years_experience": years,
        "transactions_ytd": transactions,
        "total_volume_sold": Decimal(cents).scaleb(-2),
        "subscription_tier": tier,
        "industry": fields["industry"],
        "profession": fields["profession"],
        "specializations": fields["specializations"],
        "price_ranges": fields["price_ranges"],
    }


def _corrupt(values: dict[str, Any], kind: str, rng: Random, *, index: int, license_offset: int) -> None:
    """Break exactly one rule of `values` (in place); `rng` is the invalid-rows stream."""
    if kind == "bad_state":
        values["state"] = "ZZ"
    elif kind == "unknown_industry":
        values["industry"] = "astrology"
    elif kind == "wrong_profession":
        foreign = _INDUSTRY_DATA[values["industry"]].foreign_professions
        values["profession"] = foreign[int(rng.random() * len(foreign))]
    elif kind == "bad_price_ranges":
        values["price_ranges"] = ["250000-500000"]
    elif kind == "bad_email":
        values["email"] = "not-an-email"
    elif kind == "bad_json":
        values["service_zipcodes"] = f'["{values["service_zipcodes"][0]}"'
    elif kind == "negative_number":
        values["years_experience"] = -3
    elif kind == "bad_tier":
        values["subscription_tier"] = "platinum"
    elif kind == "missing_name":
        values["name"] = ""
    else:
        raise ValueError(f"Unknown invalid kind {kind!r}")


def agent_rows_generate(
    *, count: int, seed: int = DEFAULT_SEED, invalid_rate: float = 0.0
) -> Iterator[GeneratedRow]:
    """Yield `count` agent rows, deterministic in (count, seed, invalid_rate), in O(1) memory."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > MAX_COUNT:
        raise ValueError(f"count must be at most {MAX_COUNT:,} (licence numbers would repeat)")
    rng = Random(seed)
    corrupt_rng = Random(f"estateflow-invalid-values:{seed}")
    license_offset = _seed_key(seed, "license") % MAX_COUNT
    plan = invalid_rows_plan(count=count, seed=seed, invalid_rate=invalid_rate)
    next_invalid = next(plan, None)
    for index in range(count):
        values = _row_values(rng, index=index, seed=seed, license_offset=license_offset)
        kind = None
        if next_invalid is not None and next_invalid[0] == index:
            kind = next_invalid[1]
            _corrupt(values, kind, corrupt_rng, index=index, license_offset=license_offset)
            next_invalid = next(plan, None)
        yield GeneratedRow(index=index, values=values, invalid_kind=kind)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class WriteSummary:
    fmt: str
    rows_written: int = 0
    invalid_rows: int = 0
    invalid_by_kind: dict[str, int] = field(default_factory=dict)

    def line(self, out: str) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.invalid_by_kind.items()))
        return (
            f"generate_agents: wrote {self.rows_written} rows ({self.invalid_rows} invalid"
            f"{': ' + kinds if kinds else ''}) as {self.fmt} to {out}"
        )


def format_for_path(path: str, fmt: str | None = None) -> str:
    """The explicit format, else the one the extension names, else csv."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "csv"


_encode_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def _json_text(value: Any) -> str:
    return _encode_compact(value)


def _cell_text(value: Any) -> str:
    """A typed value as CSV cell text (also the XLSX text for non-numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, list | dict):
        return _json_text(value)
    return str(value)


def _plain_text(value: Any) -> str:
    return "" if value is None else str(value)


def _json_cell_text(value: Any) -> str:
    # A str here is a deliberately malformed cell (bad_json): written verbatim.
    return value if isinstance(value, str) else _cell_text(value)


def _int_text(value: Any) -> str:
    return str(value) if type(value) is int else _cell_text(value)


# Per-column fast paths for the CSV writer; _cell_text handles any type (invalid rows included).
_CSV_CONVERTERS = tuple(
    _json_cell_text
    if column in JSON_COLUMNS
    else _int_text
    if column in INTEGER_COLUMNS
    else _cell_text
    if column in BOOLEAN_COLUMNS | DECIMAL_COLUMNS
    else _plain_text
    for column in AGENT_FILE_COLUMNS
)
_COLUMN_CONVERTERS = tuple(zip(AGENT_FILE_COLUMNS, _CSV_CONVERTERS, strict=True))


def _xlsx_cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _cell_text(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


class _Counter:
    """Wraps the row iterator and counts rows and invalid rows as they stream past."""

    def __init__(self, rows: Iterable[GeneratedRow], summary: WriteSummary):
        self._rows = rows
        self._summary = summary

    def __iter__(self) -> Iterator[GeneratedRow]:
        summary = self._summary
        for row in self._rows:
            summary.rows_written += 1
            if row.invalid_kind:
                summary.invalid_rows += 1
                summary.invalid_by_kind[row.invalid_kind] = (
                    summary.invalid_by_kind.get(row.invalid_kind, 0) + 1
                )
            yield row


def _write_csv(rows: Iterable[GeneratedRow], stream: IO[str]) -> None:
    writer = csv.writer(stream)
    writer.writerow(AGENT_FILE_COLUMNS)
    for row in rows:
        values = row.values
        writer.writerow([convert(values[c]) for c, convert in _COLUMN_CONVERTERS])


def _write_json(rows: Iterable[GeneratedRow], stream: IO[str]) -> None:
    separator = "[\n"
    for row in rows:
        values = row.values
        obj = {c: _json_value(values[c]) for c in AGENT_FILE_COLUMNS}
        stream.write(separator)
        stream.write(_encode_json(obj))
        separator = ",\n"
    stream.write("[]\n" if separator == "[\n" else "\n]\n")


# Fixed timestamps make XLSX output byte-identical run to run.
_XLSX_TIMESTAMP = datetime(2025, 1, 1)  # naive: Excel has no time zones
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


class _DeterministicZipFile(ZipFile):
    """ZipFile whose entries carry a fixed timestamp and mode instead of now / the temp file's."""

    def _zinfo(self, name: str, external_mode: int) -> ZipInfo:
        zinfo = ZipInfo(name, date_time=_ZIP_TIMESTAMP)
        zinfo.compress_type = self.compression
        zinfo.external_attr = external_mode << 16
        return zinfo

    def writestr(self, zinfo_or_arcname, data, compress_type=None, compresslevel=None):
        if not isinstance(zinfo_or_arcname, ZipInfo):
            zinfo_or_arcname = self._zinfo(zinfo_or_arcname, 0o600)
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(self, filename, arcname=None, compress_type=None, compresslevel=None):
        zinfo = self._zinfo(arcname or os.path.basename(filename), 0o644)
        zinfo.file_size = os.path.getsize(filename)
        with open(filename, "rb") as src, self.open(zinfo, "w") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _write_xlsx(rows: Iterable[GeneratedRow], path: str | os.PathLike) -> None:
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    workbook = Workbook(write_only=True)
    workbook.properties.creator = "estateflow generate_agents"
    workbook.properties.created = workbook.properties.modified = _XLSX_TIMESTAMP
    sheet = workbook.create_sheet("agents")
    sheet.append(AGENT_FILE_COLUMNS)
    for row in rows:
        values = row.values
        sheet.append([_xlsx_cell(values[c]) for c in AGENT_FILE_COLUMNS])
    archive = _DeterministicZipFile(path, "w", ZIP_DEFLATED, allowZip64=True)
    ExcelWriter(workbook, archive).save()  # not Workbook.save(): that stamps "modified" with now


def agent_file_write(
    *, rows: Iterable[GeneratedRow], out: str | os.PathLike | IO[str], fmt: str
) -> WriteSummary:
    """Stream `rows` to `out` (a path, or a text stream for csv/json) and count what was written.

    A path is written to a ".part" sibling and renamed at the end, so a failed
    run never leaves a file that looks complete.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    summary = WriteSummary(fmt=fmt)
    counted = _Counter(rows, summary)
    if not isinstance(out, str | os.PathLike):
        if fmt == "xlsx":
            raise ValueError("XLSX needs a file path; it cannot be streamed")
        (_write_csv if fmt == "csv" else _write_json)(counted, out)
        return summary

    path = Path(out)
    if path.exists() and not path.is_file():  # /dev/stdout, a FIFO: no rename possible
        if fmt == "xlsx":
            _write_xlsx(counted, path)
        else:
            with open(path, "w", encoding="utf-8", newline="") as stream:
                (_write_csv if fmt == "csv" else _write_json)(counted, stream)
        return summary
    part = path.with_name(path.name + ".part")
    try:
        if fmt == "xlsx":
            _write_xlsx(counted, part)
        else:
            with open(part, "w", encoding="utf-8", newline="") as stream:
                (_write_csv if fmt == "csv" else _write_json)(counted, stream)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return summary

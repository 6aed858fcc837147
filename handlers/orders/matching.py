"""Which catalog products a customer's description means ("son dau sen", "tranh sơn dầu phố
cổ khoảng 60x90", "lotus west lake oil").

Text is folded (no diacritics, `đ` → `d`), so "phố cổ" and "pho co" are the same. A product
is scored on three things:

- **subject words**: words of its name (Vietnamese and English) found in the request, each
  weighted by how rare it is in the catalog (a word only one work has says more), typos
  forgiven for longer words; consecutive words matching in order add a little;
- **kind of work**: "sơn dầu"/"oil", "lụa"/"silk", "sơn mài"/"lacquer", "Đông Hồ"/
  "woodblock", "bản in"/"print" — the same kind counts for it, a different kind strongly
  against it ("son dau sen" is the oil lotus, not the silk one);
- **size**: "60x90" equal to its size counts for it, another size a little against.

A product is offered when its name covers most of the request's subject words, when its kind
fits and some subject word matches, or when kind and size both fit.
Nothing offered = custom work (the description goes to staff as it is).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from rapidfuzz import fuzz

from handlers.context import Context
from handlers.engine import Offer, StepInput
from handlers.orders.catalog import Catalog, Product, format_vnd
from handlers.orders.pricing import parse_quantity, with_quantity
from handlers.text import fold, word_set

MAX_CHOICES = 3
# Share of the request's subject words (by weight) a product's name must cover to be offered
# on its words alone; with the right kind of work any subject word is enough.
COVERAGE_ENOUGH = 0.5
CLOSE_TO_BEST = 0.6  # candidates scoring at least this share of the best one are offered
_FUZZY_MIN_LENGTH = 5  # shorter words must match exactly ("ha" is not "hoa")
_FUZZY_RATIO = 85

# Phrases naming a kind of work (folded), longest first so "son mai" wins over "son".
_KIND_PHRASES: tuple[tuple[str, str], ...] = (
    ("tranh son dau", "oil"),
    ("son dau", "oil"),
    ("oil painting", "oil"),
    ("oil", "oil"),
    ("tranh lua", "silk"),
    ("lua", "silk"),
    ("silk", "silk"),
    ("son mai", "lacquer"),
    ("lacquer", "lacquer"),
    ("dong ho", "woodblock"),
    ("moc ban", "woodblock"),
    ("woodblock", "woodblock"),
    ("ban in", "print"),
    ("giclee", "print"),
    ("print", "print"),
)
# Words that say nothing about which work: asking, ordering, politeness, generic nouns.
_STOPWORDS = word_set(
    """
    tranh buc cai con co khong ko k hong a ah ak nhe nha nhi shop oi ad em e anh chi minh toi
    cho xem hoi gia bao nhieu tien muon dat mua lay can ve theo khoang tam chung size kho
    cm loai mau mot hai ba nay kia do nao gi j the of an i id d like want would please
    painting paintings picture art you have is are with from my for in on to
    tren toan giay my thuat canvas paper fine
    """
)
# Phrases that look like subject words but describe something else ("khổ lớn" = large).
_NOISE_PHRASES = ("kho lon", "co lon", "size lon", "loai lon")
_SIZE = re.compile(r"(\d{2,3})\s*(?:cm)?\s*[x×*]\s*(\d{2,3})")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    product: Product
    score: float


@dataclass(frozen=True)
class _Profile:
    product: Product
    words: tuple[str, ...]  # folded name words, Vietnamese then English
    bigrams: frozenset[tuple[str, str]]
    size: tuple[int, int] | None


def _size_of(folded: str) -> tuple[int, int] | None:
    match = _SIZE.search(folded)
    if match is None:
        return None
    a, b = int(match.group(1)), int(match.group(2))
    return (min(a, b), max(a, b))


def _kind_of(folded: str) -> tuple[str | None, str]:
    """The kind of work the text names, and the text without that phrase."""
    padded = f" {folded} "
    for phrase, kind in _KIND_PHRASES:
        if f" {phrase} " in padded:
            return kind, padded.replace(f" {phrase} ", " ", 1).strip()
    return None, folded


def _words(folded: str) -> list[str]:
    return _WORD.findall(_SIZE.sub(" ", folded))


class Matcher:
    """The catalog's visible products, prepared for matching descriptions."""

    def __init__(self, catalog: Catalog) -> None:
        self.profiles: list[_Profile] = []
        for product in catalog.visible():
            names = [fold(product.title(lang)) for lang in ("vi", "en")]
            words = tuple(w for name in names for w in _words(name))
            bigrams = frozenset(pair for name in names for pair in _pairs(_words(name)))
            size = _size_of(fold(product.details("vi")))
            self.profiles.append(_Profile(product, words, bigrams, size))
        document_frequency = Counter(w for p in self.profiles for w in set(p.words))
        total = max(1, len(self.profiles))
        self._weight = {
            word: math.log(1 + total / count) for word, count in document_frequency.items()
        }

    def candidates(self, text: str) -> list[Candidate]:
        """The products the text may mean, best first (at most MAX_CHOICES); empty when
        none fits (custom work)."""
        folded = fold(text)
        for phrase in _NOISE_PHRASES:
            folded = folded.replace(phrase, " ")
        size = _size_of(folded)
        kind, rest = _kind_of(folded)
        raw = _words(rest)
        subject = [w for w in raw if w not in _STOPWORDS and len(w) >= 2 and not w.isdigit()]
        unknown = math.log(1 + max(1, len(self.profiles)))  # a word no product has
        asked = sum(self._weight.get(word, unknown) for word in set(subject))
        scored: list[Candidate] = []
        for profile in self.profiles:
            weight = sum(self._match_weight(word, profile) for word in set(subject))
            coverage = weight / asked if asked else 0.0
            weight += 0.5 * len(set(_pairs(raw)) & profile.bigrams)
            fits_kind = kind is not None and kind == profile.product.category
            fits_size = size is not None and size == profile.size
            enough = coverage >= COVERAGE_ENOUGH or (fits_kind and (weight > 0 or fits_size))
            if not enough:
                continue
            score = weight
            if kind is not None:
                score += 1.0 if fits_kind else -1.5
            if size is not None:
                score += 1.5 if fits_size else -0.5
            if score > 0:
                scored.append(Candidate(profile.product, round(score, 3)))
        if not scored:
            return []
        scored.sort(key=lambda c: -c.score)
        best = scored[0].score
        return [c for c in scored if c.score >= best * CLOSE_TO_BEST][:MAX_CHOICES]

    def _match_weight(self, word: str, profile: _Profile) -> float:
        if word in profile.words:
            return self._weight[word]
        if len(word) < _FUZZY_MIN_LENGTH:
            return 0.0
        best = max(
            (
                (fuzz.ratio(word, candidate), candidate)
                for candidate in profile.words
                if len(candidate) >= _FUZZY_MIN_LENGTH
            ),
            default=(0.0, ""),
        )
        return self._weight[best[1]] * 0.8 if best[0] >= _FUZZY_RATIO else 0.0


def _pairs(words: list[str]) -> list[tuple[str, str]]:
    return list(zip(words, words[1:], strict=False))


_matchers: dict[int, tuple[Catalog, Matcher]] = {}


def matcher_for(catalog: Catalog) -> Matcher:
    """The matcher of `catalog`, built once per catalog version."""
    entry = _matchers.get(id(catalog))
    if entry is not None and entry[0] is catalog:
        return entry[1]
    matcher = Matcher(catalog)
    _matchers[id(catalog)] = (catalog, matcher)
    while len(_matchers) > 16:
        del _matchers[next(iter(_matchers))]
    return matcher


def best_guess(catalog: Catalog, text: str) -> str:
    """The code of the most likely product, or "custom" (used by the evaluation table)."""
    code = catalog.find_code_in(text)
    if code is not None:
        return code
    found = matcher_for(catalog).candidates(text)
    return found[0].product.code if found else "custom"


def offer_products(ctx: Context, answer: StepInput) -> Offer | None:
    """At the order's request step: a description that fits catalog products is answered
    with "did you mean one of these?" (with the quantity it names), or taken as custom work."""
    text = answer.text.strip()
    catalog = ctx.catalog
    if not text or catalog.find_code_in(text):
        return None
    found = matcher_for(catalog).candidates(text)
    if not found:
        return None
    quantity = parse_quantity(text) or 1
    lines = [ctx.tr("catalog.match.ask")]
    choices: list[tuple[str, str]] = []
    for number, candidate in enumerate(found, start=1):
        product = candidate.product
        price = format_vnd(product.price_vnd)
        lines.append(f"{number}. {product.code} — {product.name(ctx.lang)} — {price}")
        choices.append(
            (f"{product.code} · {product.title(ctx.lang)}", with_quantity(product.code, quantity))
        )
    if quantity > 1:
        lines.append(ctx.tr("catalog.match.quantity", quantity=quantity))
    return Offer("\n".join(lines), tuple(choices), ctx.tr("catalog.match.own"))

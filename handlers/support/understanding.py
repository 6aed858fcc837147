"""Free-text understanding: map a customer's message to a privacy topic or an intent.

Pure and channel-neutral; the only I/O is reading the bundled topics.toml once. Pipeline:

1. `normalize()`: NFC, `fold()` (lower-case, no diacritics, đ → d), punctuation → spaces,
   letter runs squeezed ("alooo" → "alo"), teencode expanded token by token (some tokens by
   context: "dc", "dt", "a", "hong" — see the rules next to `_expand`).
2. `matching_form()`: unknown words repaired against the knowledge-base vocabulary (English
   inflections, misspellings that cannot be Vietnamese syllables).
3. `scores()`: for every key of topics.toml, the best similarity to one of its examples
   (0..100: an IDF-weighted word-overlap F1 blended with rapidfuzz's token_sort_ratio), plus
   the weights of its keywords present in the message, plus the mood adjustment for keys
   that declare one (question vs request: "how do I delete?" vs "delete it").
4. `understand()`: best score / 100 is the confidence, capped below the answer band when the
   runner-up is within `AMBIGUITY_MARGIN`; compared with `ANSWER_THRESHOLD` and
   `SUGGEST_THRESHOLD`.

Examples and keywords go through the same `normalize()`, so topics.toml can be written
naturally (diacritics, teencode or English) and stays consistent with what is matched.
Measure changes with `scripts/nlu_report.py` (accuracy, confusions, timing).
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from rapidfuzz import fuzz, process

from handlers.text import fold

TOPICS_FILE = Path(__file__).resolve().parent / "topics.toml"

ACTIONS = (
    "order", "mydata", "edit", "export", "delete", "complaint", "returns", "staff", "policy",
    "menu",
)  # fmt: skip

# Confidence bands. At or above ANSWER_THRESHOLD the caller answers directly; between the two
# it shows the best match together with `alternatives`; below SUGGEST_THRESHOLD it is unknown.
ANSWER_THRESHOLD = 0.62
SUGGEST_THRESHOLD = 0.42

# When the runner-up scores within this many points of the best, the message is ambiguous:
# confidence is capped below the answer band so that the caller offers the alternatives.
AMBIGUITY_MARGIN = 6.0
AMBIGUOUS_CONFIDENCE = ANSWER_THRESHOLD - 0.05
# A clear lead answers too: a best score of at least CLEAR_LEAD_SCORE that beats the runner-up
# by CLEAR_LEAD_MARGIN points is raised into the answer band. Long or English messages share
# fewer words with any example, so their best score is lower even when only one key fits; a
# "did you mean" menu whose first button is obviously right only costs the customer a tap.
CLEAR_LEAD_SCORE = 45.0
CLEAR_LEAD_MARGIN = 8.0
# Alternatives (best first, at most three): keys scoring at least ALTERNATIVE_RATIO of the
# best; in the middle band always at least the top two. An unknown message gets none unless
# its best score reached ALTERNATIVES_FLOOR (something came close).
ALTERNATIVE_RATIO = 0.75
ALTERNATIVES_FLOOR = 0.30

# Customers' questions are short; longer input is cut before fuzzy matching so that a pasted
# essay cannot make one call slow (rapidfuzz's partial matching grows with both lengths).
MAX_MATCH_CHARS = 300

Kind = Literal["topic", "intent", "unknown"]
Mood = Literal["question", "request"]
Keyword = tuple[tuple[str, ...], float]  # phrases that must all occur, weight


@dataclass(frozen=True)
class Understanding:
    """What a message is about. `key` is None exactly when `kind` is "unknown".

    `alternatives` lists the likeliest keys, best first (it includes `key`): what to offer
    as buttons when the confidence is in the middle band.
    """

    kind: Kind
    key: str | None
    confidence: float
    alternatives: tuple[str, ...] = ()

    @property
    def confident(self) -> bool:
        return self.kind != "unknown" and self.confidence >= ANSWER_THRESHOLD


@dataclass(frozen=True)
class Topic:
    """One entry of topics.toml, normalized for matching."""

    key: str
    kind: Literal["topic", "intent"]
    actions: tuple[str, ...]
    examples: tuple[str, ...]
    keywords: tuple[Keyword, ...]
    mood: Mood | None = None
    # An intent's knowledge-base topic: its answer replaces the action when the intent is
    # asked as a question or its action is not available ("how do returns work?").
    answer: str | None = None
    # For each keyword, the indexes of the longer keywords containing it ("dat" ⊂ "dat hang"):
    # when one of those matches, the shorter one does not count again.
    shadowed_by: tuple[tuple[int, ...], ...] = ()


# ---------------------------------------------------------------- normalization

_APOSTROPHES = re.compile(r"['’`]")  # "what's" → "whats", "can't" → "cant" (not "can t")
_NON_WORD = re.compile(r"[\W_]+")
_LETTER_RUNS = re.compile(r"([a-z])\1{2,}")  # 3+ repeats; Vietnamese never doubles a letter thrice

# Token-wise teencode and common chat abbreviations, on folded tokens.
_TEENCODE: dict[str, str] = {
    # negation: "ko", "k", "kh", "hok", ... all mean "không" ("hong": see _BROKEN_PREV)
    **dict.fromkeys(
        ("ko", "k", "kh", "khg", "kg", "k0", "hok", "hk", "hem", "khum", "khog"), "khong"
    ),
    **dict.fromkeys(("mk", "mik", "mh", "mjk", "mjnh", "mjh"), "minh"),
    **dict.fromkeys(("sdt", "sdth", "sodt"), "so dien thoai"),
    **dict.fromkeys(("dth", "dthoai", "dienthoai"), "dien thoai"),
    **dict.fromkeys(("tt", "ttin", "thongtin", "info"), "thong tin"),
    **dict.fromkeys(("tks", "thanks", "thank", "thx", "thks", "camon", "camun", "cmon"), "cam on"),
    **dict.fromkeys(("ok", "oke", "okie", "oki", "okay", "okela", "okii", "uki"), "ok"),
    **dict.fromkeys(("j", "gj", "ji", "zi", "dj"), "gi"),
    **dict.fromkeys(("z", "v", "dzay", "zay"), "vay"),
    **dict.fromkeys(("bt", "bik", "bjk", "bit"), "biet"),
    "e": "em",
    "ad": "admin",
    "add": "admin",
    "bn": "bao nhieu",
    "bh": "bao hanh",
    "mun": "muon",
    "ns": "noi",
    "t": "toi",
    "tui": "toi",
    "vs": "voi",
    "ntn": "nhu the nao",
    "lm": "lam",
    "ng": "nguoi",
    "r": "roi",
    "nv": "nhan vien",
    "tvv": "tu van vien",
    "sp": "san pham",
    "cx": "cung",
    "trc": "truoc",
    "tk": "tai khoan",
    "mail": "email",
    "gmail": "email",
    "sip": "ship",
    "shiper": "shipper",
    "hnay": "hom nay",
    "ib": "nhan tin",
    "inbox": "nhan tin",
    "pass": "mat khau",
    "password": "mat khau",
}

# "dc" (also "đc" once folded) is "địa chỉ" (address) or "được" (can / be allowed).
# Rule, first match wins:
#   1. the next word says whose/which address ("dc nha", "dc cua minh", "dc giao hang")
#      → "dia chi";
#   2. the next word is a question/negation tag or a verb ("dc ko", "dc bao lau", "dc xem")
#      → "duoc";
#   3. the previous word is a modal, a verb or "ai" ("co dc", "the dc", "nhan dc", "ai dc")
#      → "duoc";
#   4. otherwise "dia chi": in this shop's chats a bare "dc" is almost always the address
#      ("doi dc", "sua dc" lead to the same place either way).
_DC_ADDRESS_NEXT = frozenset(
    (
        "nha", "cua", "giao", "nhan", "ship", "shipper", "moi", "cu", "o", "hien", "email",
        "minh", "toi", "em", "anh", "chi", "khach", "va", "voi", "shop", "cong", "cty", "so",
    )
)  # fmt: skip
_DC_DUOC_NEXT = frozenset(
    (
        "khong", "chua", "roi", "chu", "ha", "ah", "a", "nhe", "nua", "het", "luon", "ngay",
        "gi", "ai", "bao", "sao", "nhu", "xem", "biet", "xoa", "sua", "luu", "giu", "dung",
        "gui", "mua", "dat", "lam", "chia", "cung", "huy", "goi", "lien", "phep", "khi",
    )
)  # fmt: skip
_DC_DUOC_PREV = frozenset(
    (
        "co", "the", "chua", "da", "se", "van", "moi", "khong", "lam", "biet", "xem", "xoa",
        "luu", "giu", "gui", "nhan", "mua", "dat", "ai", "nao", "ma", "cung", "deu", "phai",
        "bi",
    )
)  # fmt: skip

# "hong" is chat for "không", but folding also turns "hỏng" (broken) and "hồng" (pink, rose)
# into "hong". So: written with a diacritic, only "hông" means "không"; written bare, it is
# "broken" after "bi"/"da"/"lam"/"hu"/"vo" ("tranh bi hong") and "không" otherwise.
_BROKEN_PREV = frozenset(("bi", "da", "lam", "hu", "vo", "va"))

# English function words that do not collide with folded Vietnamese words: their presence
# means "a" is the English article, not "anh" (older brother / you).
_ENGLISH_HINTS = frozenset(
    (
        "i", "the", "you", "your", "what", "how", "please", "want", "is", "are", "was", "does",
        "with", "this", "that", "have", "would", "should", "will", "id", "im", "it", "of",
        "for", "like", "get", "buy", "need", "lot", "use", "made", "file", "talk",
    )
)  # fmt: skip


def _expand(pairs: list[tuple[str, str]]) -> list[str]:
    """Expand teencode on (as typed, folded) token pairs; "dc", "dt", "a" and "hong" depend
    on their neighbours or diacritics (see the rules above)."""
    english = any(folded in _ENGLISH_HINTS for _, folded in pairs)
    # First pass: context-free expansions, so that the rules below see expanded neighbours.
    first = [f if f in ("dc", "dt", "a", "hong") else _TEENCODE.get(f, f) for _, f in pairs]
    out: list[str] = []
    for i, tok in enumerate(first):
        typed = pairs[i][0]
        prev = out[-1] if out else ""
        if tok == "dc":
            nxt = first[i + 1].split()[0] if i + 1 < len(first) else ""
            if nxt in _DC_ADDRESS_NEXT:
                tok = "dia chi"
            elif nxt in _DC_DUOC_NEXT or prev in _DC_DUOC_PREV:
                tok = "duoc"
            else:
                tok = "dia chi"
        elif tok == "dt":
            # "so dt" already says "số"; alone, "dt" is the whole "số điện thoại".
            tok = "dien thoai" if prev == "so" else "so dien thoai"
        elif tok == "a":
            # "ạ"/"à" are particles; a final bare "a" is "ạ" typed without its dot.
            bare_pronoun = typed == "a" and not english and i < len(first) - 1
            tok = "anh" if bare_pronoun else "a"
        elif tok == "hong":
            negation = typed == "hông" or (typed == "hong" and prev not in _BROKEN_PREV)
            tok = "khong" if negation else "hong"
        out.extend(tok.split())
    return out


def normalize(text: str) -> str:
    """The matching form of a message: folded, punctuation-free, teencode expanded."""
    text = unicodedata.normalize("NFC", text[: MAX_MATCH_CHARS * 2]).lower()
    text = _APOSTROPHES.sub("", text.replace("e-mail", "email"))
    pairs = []
    for typed in _NON_WORD.sub(" ", text).split():
        folded = _LETTER_RUNS.sub(r"\1", fold(typed))
        if folded:
            pairs.append((typed, folded))
    out = " ".join(_expand(pairs))
    return out if len(out) <= MAX_MATCH_CHARS else out[:MAX_MATCH_CHARS].rsplit(" ", 1)[0]


# ---------------------------------------------------------------- knowledge base


def _parse_topic(key: str, raw: Mapping[str, object]) -> Topic:
    kind = raw.get("kind")
    if kind not in ("topic", "intent"):
        raise ValueError(f"{key}: kind must be 'topic' or 'intent', not {kind!r}")
    actions = tuple(str(a) for a in _as_list(raw.get("actions", []), key, "actions"))
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ValueError(f"{key}: unknown actions {unknown}")
    examples = tuple(normalize(str(e)) for e in _as_list(raw.get("examples", []), key, "examples"))
    if not all(examples) or (kind == "intent" and not examples):
        raise ValueError(f"{key}: needs non-empty examples")
    raw_keywords = raw.get("keywords", {})
    if not isinstance(raw_keywords, Mapping):
        raise ValueError(f"{key}: keywords must be a table of phrase = weight")
    keywords = []
    for phrase, weight in raw_keywords.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"{key}: bad keyword weight {phrase!r} = {weight!r}")
        keywords.append((_parse_phrase(str(phrase)), float(weight)))
    mood = raw.get("mood")
    if mood not in (None, "question", "request"):
        raise ValueError(f"{key}: mood must be 'question' or 'request', not {mood!r}")
    answer = raw.get("answer")
    if answer is not None and (kind != "intent" or not isinstance(answer, str)):
        raise ValueError(f"{key}: only an intent names an answer topic, as a string")
    return Topic(key, kind, actions, examples, tuple(keywords), mood, answer, _shadowing(keywords))


def _parse_phrase(phrase: str) -> tuple[str, ...]:
    """ "a + b" → ("a", "b"), each part normalized like a message."""
    parts = tuple(normalize(p) for p in phrase.split("+"))
    if not all(parts):
        raise ValueError(f"empty part in keyword {phrase!r}")
    return parts


def _shadowing(keywords: list[Keyword]) -> tuple[tuple[int, ...], ...]:
    def inside(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
        return len(short) == len(long) == 1 and short != long and f" {short[0]} " in f" {long[0]} "

    return tuple(
        tuple(j for j, (other, w2) in enumerate(keywords) if inside(parts, other) and w * w2 > 0)
        for parts, w in keywords
    )


def _as_list(value: object, key: str, field: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{key}: {field} must be a list")
    return value


# Chat particles and fillers: they say nothing about the subject, so they barely count when
# comparing words (otherwise "... vay a" would look less like an example than "...").
_FILLERS = frozenset(
    (
        # Vietnamese particles
        "a", "ah", "ak", "vay", "nhe", "nha", "nhi", "ha", "oi", "voi", "thi", "la", "ma",
        "u", "uh", "ok", "day",
        # English function words
        "i", "you", "me", "my", "the", "to", "do", "is", "are", "it", "of", "for", "an",
    )
)  # fmt: skip
_FILLER_WEIGHT = 0.15
# Typo repair: an unknown word of 4+ letters that cannot be a Vietnamese syllable becomes the
# closest knowledge-base word when rapidfuzz's ratio reaches the cut-off ("nhug" → "nhung",
# "thog" → "thong"). A well-formed syllable is never rewritten: "phong" (room) is one edit
# from "hong" (broken), and most everyday words are one edit from some domain word.
_TYPO_CUTOFF = 88.0
_TYPO_MIN_LEN = 4
_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"  # onset
    r"(?:uye|uya|uyu|uoi|uou|ieu|yeu|oai|oay|oeo|uay"  # vowel cluster, folded
    r"|ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ya|ye|[aeiouy])"
    r"(?:ch|ng|nh|[cmnpt])?"  # coda
)


@dataclass(frozen=True)
class _Example:
    key: str
    text: str
    tokens: frozenset[str]
    weight: float  # sum of the token weights


@dataclass(frozen=True)
class _Index:
    topics: dict[str, Topic]
    examples: tuple[_Example, ...]
    idf: dict[str, float]
    unseen_weight: float  # weight of a word the knowledge base never uses: the highest
    vocabulary: tuple[str, ...]

    def weight(self, token: str) -> float:
        return _weight(token, self.idf, self.unseen_weight)


def _weight(token: str, idf: Mapping[str, float], unseen: float) -> float:
    return _FILLER_WEIGHT if token in _FILLERS else idf.get(token, unseen)


@cache
def _index() -> _Index:
    """topics.toml, parsed, normalized and indexed once per process."""
    with TOPICS_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    topics = {key: _parse_topic(key, raw) for key, raw in data.items()}
    for t in topics.values():
        if t.answer is not None and getattr(topics.get(t.answer), "kind", None) != "topic":
            raise ValueError(f"{t.key}: answer {t.answer!r} is not a topic")
    # Inverse "document" frequency with one document per key: words used by many keys
    # ("thong tin", "cua", "toi") weigh little, words owned by one key ("ship") weigh a lot.
    vocab_by_key: dict[str, set[str]] = {}
    for key, t in topics.items():
        words = {tok for ex in t.examples for tok in ex.split()}
        words |= {tok for parts, w in t.keywords if w > 0 for p in parts for tok in p.split()}
        vocab_by_key[key] = words
    doc_freq: dict[str, int] = {}
    for words in vocab_by_key.values():
        for tok in words:
            doc_freq[tok] = doc_freq.get(tok, 0) + 1
    n = len(topics)
    idf = {tok: math.log(1 + n / df) for tok, df in doc_freq.items()}
    unseen = math.log(1 + n)
    examples = []
    for key, t in topics.items():
        for ex in t.examples:
            tokens = frozenset(ex.split())
            examples.append(_Example(key, ex, tokens, sum(_weight(w, idf, unseen) for w in tokens)))
    return _Index(topics, tuple(examples), idf, unseen, tuple(sorted(idf)))


def _topics() -> dict[str, Topic]:
    return _index().topics


def all_topics() -> tuple[str, ...]:
    """Keys of the knowledge-base topics (not intents), in file order."""
    return tuple(k for k, t in _topics().items() if t.kind == "topic")


def all_intents() -> tuple[str, ...]:
    """Keys of the intents, in file order."""
    return tuple(k for k, t in _topics().items() if t.kind == "intent")


def topic_actions(key: str) -> tuple[str, ...]:
    """The action buttons that follow the answer of `key` (a topic or an intent)."""
    return _topics()[key].actions


def topic(key: str) -> Topic:
    """The metadata of one topic or intent (KeyError if there is none)."""
    return _topics()[key]


# ---------------------------------------------------------------- scoring

# Share of the word-overlap score in the similarity; the rest is rapidfuzz's token_sort_ratio,
# which sees spelling closeness the word sets miss.
_OVERLAP_SHARE = 0.7


# English inflections, tried on unknown words only. Folded Vietnamese syllables never end in
# "s", "d" or "ing", so this cannot touch a Vietnamese word.
_ENGLISH_SUFFIXES = ("ing", "ed", "es", "s", "d")


def _repair_typos(tokens: list[str], index: _Index) -> list[str]:
    out = []
    for tok in tokens:
        if tok not in index.idf and tok not in _FILLERS:
            tok = _known_form(tok, index)
        out.append(tok)
    return out


def _known_form(tok: str, index: _Index) -> str:
    """An unknown word as the knowledge base spells it, if it is one ("used" → "use")."""
    for suffix in _ENGLISH_SUFFIXES:
        stem = tok[: -len(suffix)]
        if tok.endswith(suffix) and len(stem) >= 3 and stem in index.idf:
            return stem
    if len(tok) >= _TYPO_MIN_LEN and not _SYLLABLE.fullmatch(tok):
        match = process.extractOne(
            tok, index.vocabulary, scorer=fuzz.ratio, score_cutoff=_TYPO_CUTOFF
        )
        if match is not None:
            return str(match[0])
    return tok


def _overlap(tokens: frozenset[str], weight: float, example: _Example, index: _Index) -> float:
    """0..100: weighted F1 of shared words. Precision = how much of the message the example
    explains, recall = how much of the example the message contains."""
    shared = tokens & example.tokens
    if not shared:
        return 0.0
    w = sum(index.weight(t) for t in shared)
    precision, recall = w / weight, w / example.weight
    return 200.0 * precision * recall / (precision + recall)


# Mood markers, checked in this order: any question marker makes the message a question
# ("muon xoa ... thi lam the nao"); otherwise a request marker makes it a request. "When"
# and "how long" are not markers: they ask about timing (retention), not about the way.
_QUESTION_MARKERS = tuple(
    _parse_phrase(m)
    for m in (
        "lam sao", "the nao", "cach", "duoc khong", "co the", "co + khong", "lam gi",
        "phai lam", "o dau", "how", "can i", "could", "possible",
    )
)  # fmt: skip
_REQUEST_MARKERS = tuple(
    _parse_phrase(m)
    for m in ("di", "giup", "ngay", "hay", "muon", "please", "pls", "now", "want", "id like")
)
# Added to a key whose mood matches the message's, subtracted when it is the opposite one.
MOOD_WEIGHT = 14.0


def _has(padded: str, parts: tuple[str, ...]) -> bool:
    return all(f" {part} " in padded for part in parts)


def _mood(padded: str) -> Mood | None:
    if any(_has(padded, m) for m in _QUESTION_MARKERS):
        return "question"
    if any(_has(padded, m) for m in _REQUEST_MARKERS):
        return "request"
    return None


# `is_question()`: asking for information, as opposed to asking for an action. Checked in
# order: a "?" or a word that only asks (when, how long, why, where, how) makes a question;
# else a request word ("đi", "giúp", "please", "show me") makes a request; else a softer
# question form ("có … không", "được không", "can I", "what", a final "gì"/"nào"/"chưa")
# makes a question. So "xóa giúp mình được không" asks for the deletion while "khi nào dữ
# liệu bị xóa" asks about it.
_ASKING = tuple(
    _parse_phrase(m)
    for m in (
        "lam sao", "the nao", "ra sao", "cach nao", "cach", "khi nao", "bao gio", "bao lau",
        "tai sao", "vi sao", "o dau", "muon biet", "cho + hoi", "lam gi", "phai lam",
        "how", "when", "why", "where", "whats",
    )
)  # fmt: skip
_REQUESTING = tuple(
    _parse_phrase(m)
    for m in (
        "di", "giup", "gium", "dum", "ngay", "hay", "muon", "cho + xem", "please", "pls",
        "plz", "now", "want", "show", "id like",
    )
)  # fmt: skip
_SOFT_ASKING = tuple(
    _parse_phrase(m)
    for m in (
        "co + khong", "duoc khong", "gi", "what", "which", "who", "can i", "could", "possible",
        "is it", "do you", "does", "will you", "is my", "are my", "did",
    )
)  # fmt: skip
# Questions open with these ("what is…", "ai được xem…"): asking, whatever follows.
_ASKING_OPENERS = frozenset(("what", "whats", "which", "who", "ai", "sao"))
# Vietnamese question words that ask only at the end of a message ("shop lưu gì", "xong
# chưa ạ"); elsewhere they are often part of a name or an address ("chùa Bộc", "Thị Ái"),
# so a final word typed with other marks ("Ái") does not count.
_FINAL_ASKING = {
    "khong": "không", "chua": "chưa", "gi": "gì", "nao": "nào", "ai": "ai", "sao": "sao",
    "nhi": "nhỉ", "ha": "hả",
}  # fmt: skip
_TRAILING = frozenset(
    ("a", "ah", "vay", "the", "nhe", "nha", "shop", "ad", "admin", "oi", "ban", "em", "anh",
     "chi", "ta", "day", "roi")
)  # fmt: skip


def _asks_at_the_end(text: str) -> bool:
    typed = _NON_WORD.sub(" ", unicodedata.normalize("NFC", text.lower())).split()
    while typed and fold(typed[-1]) in _TRAILING and len(typed) > 1:
        typed.pop()
    if not typed:
        return False
    last = typed[-1]
    word = _TEENCODE.get(fold(last), fold(last))
    expected = _FINAL_ASKING.get(word)
    return expected is not None and (fold(last) == last or last == expected)


def is_question(text: str) -> bool:
    """True when a message asks something rather than asks for something ("when is my
    data deleted?", "how do I delete my data", "shop xóa dữ liệu khi nào") — so that a
    question about an action gets the answer with the action offered as a button, and
    never starts the action itself ("xóa dữ liệu của tôi đi", "delete my data")."""
    if "?" in text:
        return True
    norm = normalize(text)
    padded = f" {norm} "
    if norm.split(" ", 1)[0] in _ASKING_OPENERS or any(_has(padded, m) for m in _ASKING):
        return True
    if any(_has(padded, m) for m in _REQUESTING):
        return False
    return any(_has(padded, m) for m in _SOFT_ASKING) or _asks_at_the_end(text)


def _keyword_bonus(padded: str, topic: Topic, mood: Mood | None) -> float:
    hits = [_has(padded, parts) for parts, _ in topic.keywords]
    bonus = sum(
        weight
        for (_, weight), hit, longer in zip(topic.keywords, hits, topic.shadowed_by, strict=True)
        if hit and not any(hits[j] for j in longer)
    )
    # Mood only separates keys that already share the subject: a question about anything
    # must not drift towards "delete" just because "delete" is the question-shaped key.
    on_subject = any(hit and w > 0 for (_, w), hit in zip(topic.keywords, hits, strict=True))
    if topic.mood and mood and on_subject:
        bonus += MOOD_WEIGHT if topic.mood == mood else -MOOD_WEIGHT
    return bonus


# Particles and forms of address that close a chat message ("... vay shop", "... a ad"):
# they say who is addressed, not what about, so they are dropped from the end before
# matching ("shop" as the subject, "shop o dau", stays).
_CLOSING_PARTICLES = frozenset(("vay", "a", "ah", "nhe", "nha", "oi", "ha", "the", "nhi"))
_ADDRESSEES = frozenset(("shop", "ad", "admin", "ban", "em", "anh", "chi"))


def _without_closing(tokens: list[str]) -> list[str]:
    while len(tokens) > 2:
        if tokens[-1] in _ADDRESSEES and tokens[-2] in _CLOSING_PARTICLES:
            tokens = tokens[:-2]
        elif tokens[-1] in _CLOSING_PARTICLES:
            tokens = tokens[:-1]
        else:
            break
    return tokens


def matching_form(text: str) -> str:
    """`normalize()` plus typo repair against the knowledge-base vocabulary, closing
    particles dropped."""
    return " ".join(_without_closing(_repair_typos(normalize(text).split(), _index())))


def scores(text: str) -> dict[str, float]:
    """Every key's raw score for `text` (best example similarity + keyword weights)."""
    index = _index()
    norm = matching_form(text)
    best: dict[str, float] = dict.fromkeys(index.topics, 0.0)
    if not norm:
        return best
    tokens = frozenset(norm.split())
    weight = sum(index.weight(t) for t in tokens)
    for ex in index.examples:
        sim = _OVERLAP_SHARE * _overlap(tokens, weight, ex, index) + (
            1 - _OVERLAP_SHARE
        ) * fuzz.token_sort_ratio(norm, ex.text)
        if sim > best[ex.key]:
            best[ex.key] = sim
    padded = f" {norm} "
    mood = _mood(padded)
    question = is_question(text)
    for key, t in index.topics.items():
        best[key] += _keyword_bonus(padded, t, mood)
        if question and t.kind == "intent" and t.mood == "request":
            best[key] = 0.0  # a question never starts a request-only action ("delete")
    return best


LEAK_REPORT = "leak_report"


def is_leak_report(text: str) -> bool:
    """A message that confidently reports a (suspected) data leak: it goes first, before
    any open form, staff thread or order conversation (issue #11, "leaks first")."""
    result = understand(text)
    return result.confident and result.key == LEAK_REPORT


_SENTENCES = re.compile(r"(?<=[?.!])\s+")


def understand_sentences(text: str) -> list[Understanding]:
    """For a message of several sentences ("Shop ở đâu? Phí ship bao nhiêu?"), the confident
    reading of each sentence, in order, at most one per key; [] for a single sentence."""
    sentences = [s for s in _SENTENCES.split(text.strip()) if len(s.split()) >= 2]
    found: dict[str | None, Understanding] = {}
    for sentence in sentences if len(sentences) >= 2 else ():
        part = understand(sentence)
        if part.confident and part.key not in found:
            found[part.key] = part
    return list(found.values())


def understand(text: str) -> Understanding:
    """Classify one customer message. Never raises; confidence is in [0, 1].

    confidence ≥ ANSWER_THRESHOLD: answer / start the flow of `key`; between the thresholds:
    `key` is the best guess, offer `alternatives`; below SUGGEST_THRESHOLD: kind "unknown".
    """
    ranked = sorted(scores(text).items(), key=lambda kv: kv[1], reverse=True)
    (best_key, best), (_, second) = ranked[0], ranked[1]
    confidence = min(1.0, max(0.0, best / 100.0))
    if best - second < AMBIGUITY_MARGIN:
        # Near tie: keep it out of the answer band so the caller offers the alternatives.
        confidence = min(confidence, AMBIGUOUS_CONFIDENCE)
    elif best >= CLEAR_LEAD_SCORE and best - second >= CLEAR_LEAD_MARGIN:
        confidence = max(confidence, ANSWER_THRESHOLD)
    middle = SUGGEST_THRESHOLD <= confidence < ANSWER_THRESHOLD
    alternatives = tuple(
        key
        for i, (key, score) in enumerate(ranked[:3])
        if score > 0 and (score >= ALTERNATIVE_RATIO * best or (middle and i < 2))
    )
    confidence = round(confidence, 4)
    if confidence < SUGGEST_THRESHOLD:
        close = best / 100.0 >= ALTERNATIVES_FLOOR
        return Understanding("unknown", None, confidence, alternatives if close else ())
    return Understanding(_topics()[best_key].kind, best_key, confidence, alternatives)

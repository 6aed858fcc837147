"""Customer support: the privacy knowledge base and free-text understanding (pure, no I/O
beyond reading the bundled topics.toml)."""

from handlers.support.understanding import (
    ANSWER_THRESHOLD,
    SUGGEST_THRESHOLD,
    Understanding,
    all_intents,
    all_topics,
    topic_actions,
    understand,
)

__all__ = [
    "ANSWER_THRESHOLD",
    "SUGGEST_THRESHOLD",
    "Understanding",
    "all_intents",
    "all_topics",
    "topic_actions",
    "understand",
]

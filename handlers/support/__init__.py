"""Customer support: the privacy knowledge base and free-text understanding.

Pure and channel-neutral. Answers live in locales/<lang>/LC_MESSAGES/privacy_kb.po as
`kb.<topic>.title` / `kb.<topic>.answer`; topics, intents, their action buttons and matching
data in topics.toml.
"""

from handlers.support.understanding import (
    ACTIONS,
    ANSWER_THRESHOLD,
    SUGGEST_THRESHOLD,
    Understanding,
    all_intents,
    all_topics,
    normalize,
    topic_actions,
    understand,
)

__all__ = [
    "ACTIONS",
    "ANSWER_THRESHOLD",
    "SUGGEST_THRESHOLD",
    "Understanding",
    "all_intents",
    "all_topics",
    "normalize",
    "topic_actions",
    "understand",
]

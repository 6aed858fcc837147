"""Staff-message tags: which order, ticket or support thread an outbox row belongs to.

Stored in `outbox.tag` ("order:12") and used for threading replies under an alert, editing
the alert, and redacting every copy on erasure. Built and parsed only here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TagKind = Literal["order", "ticket", "support", "resolve"]
_TAG = re.compile(r"(order|ticket|support|resolve):([0-9]{1,19})", re.ASCII)


@dataclass(frozen=True)
class Tag:
    kind: TagKind  # "resolve": the staff prompt asking how to resolve a ticket
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, raw: str | None) -> Tag | None:
        match = _TAG.fullmatch(raw or "")
        if match is None:
            return None
        kind: TagKind = match.group(1)  # type: ignore[assignment]
        return cls(kind, int(match.group(2)))

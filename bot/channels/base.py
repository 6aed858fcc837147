"""The contract every channel adapter fulfils towards the runtime."""

from __future__ import annotations

from typing import Protocol

from handlers.messages import ChannelCapabilities, Outbound, SendResult


class ChannelAdapter(Protocol):
    """Renders channel-neutral `Outbound` messages on one platform.

    `send` raises `PermanentSendError` for refusals that will not heal and
    `TemporarySendError` (or any other exception) for failures worth retrying.
    `edit_message_id` / `reply_to_message_id` are platform ids of earlier messages.
    `capabilities` is what the handlers learn about the channel (they never see its name's
    meaning): the runtime hands it to them when the adapter is added.
    """

    name: str
    capabilities: ChannelCapabilities

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult: ...

    async def delete(self, chat_id: str, message_id: str) -> None: ...

"""Errors that handlers turn into polite, localized replies."""

from __future__ import annotations


class InvalidInput(Exception):
    """An answer a step cannot accept. `key` is a catalog message id, `params` fill it.

    The message deliberately never contains the customer's input (no personal data in
    exceptions or logs).
    """

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

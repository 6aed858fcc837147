"""Flows shared by every feature: first contact (core) and consent."""

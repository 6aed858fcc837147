"""The staff web page (`/staff/`), mounted on the bot's web server; see `app.StaffWeb`."""

from bot.staff_web.app import StaffWeb

__all__ = ["StaffWeb"]

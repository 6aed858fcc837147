"""Importing this package registers every flow and handler on `handlers.router.router`."""

from handlers.flows import consent, core  # noqa: F401
from handlers.orders import flow, staff  # noqa: F401
from handlers.rights import commands  # noqa: F401
from handlers.support import abuse, answers, complaints, returns, talk  # noqa: F401

"""The budget banner on every page: teams of the user at 80% or more of their monthly budget."""
import logging

import redis

from accounts.teams import selectors

log = logging.getLogger(__name__)


def budget_banners(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    try:
        return {"team_budget_banners": selectors.budget_banners(user=user)}
    except redis.RedisError:
        # The counters are in Redis: without it the page still renders, only the banner is missing.
        log.warning("team budgets unreadable for the banner", exc_info=True)
        return {}

"""The budget banner on every page: teams of the user at 80% or more of their monthly budget."""
from accounts.teams import selectors


def budget_banners(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"team_budget_banners": selectors.budget_banners(user=user)}

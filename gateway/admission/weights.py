"""Who queues as one flow, and with what weight.

A flow is one user today: FIFO holds within it, and flows share a saturated model in proportion to their
weights. Teams plug in here: `team_weight` scales a member's weight by the team's share (and a team-level
flow key would make the team, not the user, the unit that is balanced first).
"""
from __future__ import annotations

from gateway.selectors import Principal


def flow_of(principal: Principal) -> str:
    return f"u{principal.user_id}"


def team_weight(principal: Principal) -> float:
    """The factor a team's share puts on its member's weight; 1 while accounts have no teams."""
    return 1.0


def weight_of(principal: Principal) -> float:
    return max(1, principal.weight) * team_weight(principal)

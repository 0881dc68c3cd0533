"""Who queues as one flow, with what weight, and under which concurrency limits.

A flow is one user: FIFO holds within it, and flows share a saturated model in proportion to their
weights. A team's `queue_weight` scales its members' weights; the teams are those the request is counted
against (`Principal.teams`, what the gateway passes to `QuotaEngine.acquire`: the team it is charged to).
"""
from __future__ import annotations

from gateway.selectors import Principal


def flow_of(principal: Principal) -> str:
    return f"u{principal.user_id}"


def team_weight(principal: Principal) -> float:
    """The factor the charged team's share puts on its member's weight (1 for a personal request)."""
    return float(max((team.queue_weight for team in principal.teams), default=1))


def weight_of(principal: Principal) -> float:
    return max(1, principal.weight) * team_weight(principal)


def team_limits_of(principal: Principal) -> list[tuple[int, int]]:
    """(team id, concurrent requests) per team: a member's request at its team's limit waits in the queue."""
    return [(team.team_id, team.concurrent_requests) for team in principal.teams]

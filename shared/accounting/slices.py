"""Regional token slices: how much a region may spend without asking anyone. Pure.

Each region's Redis holds a slice of an account's tokens and charges against it alone,
so no request waits on another region. MongoDB, global, holds the account's `balance`
and `leased`, the sum over regions of what was granted and not yet spent or given back;
`balance >= leased` always, so the slices together never exceed what the account has.
A region's agent asks the broker for a grant when its slice runs low; the broker grants
out of `balance - leased` with one conditional update, never more (docs/multi-region.md).

This module decides sizes: how big a grant to ask for, how much the broker gives when
several regions want the same last tokens, and when an idle slice goes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GrantPolicy:
    horizon_s: float = 15.0  # a grant covers this long of the region's recent demand
    refill_below_s: float = 5.0  # ask again when the slice covers less than this
    standby: int = 2  # kept in each region the account used recently: its first memes there
    max_grant: int = 10_000  # the most one grant carries (the account's rate limit bounds it)
    idle_return_s: float = 60.0  # a slice unused this long goes back, but for the standby
    demand_weight: float = 0.3  # the newest second's share of the demand estimate


NO_DEMAND_PER_S = 0.001  # under a token every quarter of an hour: no demand


@dataclass(slots=True)
class Demand:
    """Tokens a second one region spends for one account: an exponentially weighted
    mean over ticks, so a burst raises it at once and a lull lowers it within seconds."""

    per_s: float = 0.0

    def observe(self, spent: int, over_s: float, weight: float) -> None:
        self.per_s += weight * (spent / over_s - self.per_s)
        if self.per_s < NO_DEMAND_PER_S:
            self.per_s = 0.0


def wanted(policy: GrantPolicy, slice_tokens: int, demand_per_s: float, backlog: int) -> int:
    """Tokens to ask for now (0: the slice is enough).

    A region with demand asks once its slice covers less than `refill_below_s` of it,
    for enough to last `horizon_s` more, plus what was refused meanwhile (`backlog`); a
    region without demand only keeps its standby.
    """
    floor = max(policy.standby, math.ceil(demand_per_s * policy.refill_below_s) + backlog)
    if slice_tokens >= floor:
        return 0
    horizon_s = policy.horizon_s + policy.refill_below_s
    target = max(policy.standby, math.ceil(demand_per_s * horizon_s) + backlog)
    return min(policy.max_grant, target - slice_tokens)


def grant(
    policy: GrantPolicy, asked: int, available: int, asking_regions: int, urgent: bool
) -> int:
    """What the broker gives a region that asks for `asked` out of `available`.

    Plenty: all of it. Scarce: only a region whose clients are waiting (`urgent`) gets
    any, so the last tokens go where they are spent instead of to standby slices; a fair
    share among the regions asking, but never less than the standby while any is left
    (an even split of 3 tokens among 5 regions would give each nothing).
    """
    if available <= 0 or asked <= 0 or (available < asked and not urgent):
        return 0
    share = max(available // max(1, asking_regions), min(available, policy.standby))
    return min(asked, share, available, policy.max_grant)


def to_return(
    policy: GrantPolicy, slice_tokens: int, idle_s: float, demand_per_s: float, starving: bool
) -> int:
    """Tokens a region gives back: all but the standby once idle long enough. When
    another region starves for this account's last tokens, an idle region gives all,
    a busy one all it holds past `refill_below_s` of its own demand."""
    if starving:
        if idle_s >= 2.0:
            return slice_tokens
        return max(0, slice_tokens - math.ceil(demand_per_s * policy.refill_below_s))
    if idle_s >= policy.idle_return_s and slice_tokens > policy.standby:
        return slice_tokens - policy.standby
    return 0

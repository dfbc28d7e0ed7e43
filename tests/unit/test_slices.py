"""Sizing regional slices: what a region asks for, what the broker gives, what goes back."""

from __future__ import annotations

from shared.accounting.slices import Demand, GrantPolicy, grant, to_return, wanted

POLICY = GrantPolicy(horizon_s=15, refill_below_s=5, standby=4, max_grant=10_000)


def test_a_region_asks_for_twenty_seconds_of_demand_once_under_five() -> None:
    assert wanted(POLICY, slice_tokens=251, demand_per_s=50, backlog=0) == 0
    assert wanted(POLICY, slice_tokens=249, demand_per_s=50, backlog=0) == 1000 - 249
    assert wanted(POLICY, slice_tokens=0, demand_per_s=50, backlog=6) == 1006, "and the refused"


def test_an_idle_region_keeps_only_its_standby() -> None:
    assert wanted(POLICY, slice_tokens=4, demand_per_s=0, backlog=0) == 0
    assert wanted(POLICY, slice_tokens=1, demand_per_s=0, backlog=0) == 3
    assert to_return(POLICY, slice_tokens=30, idle_s=59, demand_per_s=0, starving=False) == 0
    assert to_return(POLICY, slice_tokens=30, idle_s=60, demand_per_s=0, starving=False) == 26


def test_a_starving_region_gets_an_idle_regions_whole_slice_and_a_busy_ones_excess() -> None:
    assert to_return(POLICY, slice_tokens=4, idle_s=3, demand_per_s=0, starving=True) == 4
    assert to_return(POLICY, slice_tokens=100, idle_s=0, demand_per_s=10, starving=True) == 50


def test_the_broker_never_grants_more_than_is_available_and_shares_the_last_tokens() -> None:
    assert grant(POLICY, asked=500, available=10_000, asking_regions=1, urgent=False) == 500
    assert grant(POLICY, asked=500, available=300, asking_regions=3, urgent=True) == 100
    assert grant(POLICY, asked=500, available=3, asking_regions=5, urgent=True) == 3
    assert grant(POLICY, asked=500, available=0, asking_regions=1, urgent=True) == 0
    assert grant(POLICY, asked=20_000, available=50_000, asking_regions=1, urgent=True) == 10_000


def test_near_zero_only_a_region_whose_clients_wait_gets_tokens() -> None:
    assert grant(POLICY, asked=4, available=3, asking_regions=1, urgent=False) == 0
    assert grant(POLICY, asked=4, available=3, asking_regions=1, urgent=True) == 3


def test_demand_follows_a_burst_at_once_and_a_lull_within_seconds() -> None:
    demand = Demand()
    demand.observe(50, 1.0, 0.3)
    assert demand.per_s == 15
    for _ in range(10):
        demand.observe(0, 1.0, 0.3)
    assert demand.per_s < 0.5

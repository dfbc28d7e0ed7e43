"""The regional simulation (sim/): deterministic, exact for the design, and able to fail.

Ten-minute runs here; `make sim` runs the hour over many seeds."""

from __future__ import annotations

from dataclasses import replace

from sim.run import run_one
from sim.scenarios import BY_NAME

TEN_MINUTES_S = 600.0
DRAIN = replace(BY_NAME["drain to zero"], balance_hours=0.05)


def test_one_seed_gives_one_trace_and_another_seed_another() -> None:
    steady = BY_NAME["concurrent"]
    first = run_one("slices", steady, 7, TEN_MINUTES_S)
    assert first.trace == run_one("slices", steady, 7, TEN_MINUTES_S).trace
    assert first.trace != run_one("slices", steady, 8, TEN_MINUTES_S).trace


def test_accounts_drained_to_zero_across_regions_never_overspend_and_the_books_agree() -> None:
    result = run_one("slices", DRAIN, 3, TEN_MINUTES_S)
    assert result.requests > 10_000
    assert (result.overspend, result.cross_region, result.books_exact) == (0, 0, True)


def test_a_lost_redis_costs_the_client_at_most_its_slice_and_the_service_nothing() -> None:
    loss = replace(BY_NAME["Redis loss"], redis_loss_s=300.0, balance_hours=0.1)
    result = run_one("slices", loss, 5, TEN_MINUTES_S)
    assert (result.overspend, result.books_exact) == (0, True)


def test_the_checker_flags_the_baselines_and_mutants_that_overspend() -> None:
    assert run_one("full balance per region", DRAIN, 3, TEN_MINUTES_S).overspend > 0
    assert run_one("mutant: no slice check", DRAIN, 3, TEN_MINUTES_S).overspend > 0
    # A busy account in the region that loses its Redis: debits are on their way then.
    loss = replace(BY_NAME["Redis loss"], redis_loss_s=300.0, heavy=True)
    assert run_one("mutant: close before debits", loss, 5, TEN_MINUTES_S).books_exact is False


def test_forwarding_to_a_home_region_is_exact_but_crosses_regions_on_the_hot_path() -> None:
    result = run_one("homed and forwarded", BY_NAME["traveller"], 2, TEN_MINUTES_S)
    assert result.overspend == 0
    assert result.cross_region > 1_000


def test_a_charge_that_waits_for_its_grant_is_served_where_answering_at_once_refuses() -> None:
    """Draining accounts: the charges that find their slice empty wait for the urgent
    grant (as the services do) and are served; answered 503 at once, many are refused
    while the account still has tokens."""
    waiting = run_one("slices", DRAIN, 3, TEN_MINUTES_S)
    at_once = run_one("slices, answering 503 at once", DRAIN, 3, TEN_MINUTES_S)
    assert waiting.held > 100
    assert waiting.false_refusals * 10 < at_once.false_refusals

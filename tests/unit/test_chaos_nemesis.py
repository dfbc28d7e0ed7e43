"""The nemesis's schedule comes from the seed alone and never doubles up on a target."""

from __future__ import annotations

import itertools

from chaos.nemesis import KINDS, ROLLBACK_KIND, schedule


def test_the_same_seed_gives_the_same_faults_and_another_seed_others() -> None:
    assert schedule(7, 600) == schedule(7, 600)
    assert schedule(7, 600) != schedule(8, 600)


def test_ten_minutes_hold_every_kind_of_fault_every_few_seconds() -> None:
    faults = schedule(3, 600)
    assert {f.kind for f in faults} == set(KINDS)
    gaps = [b.at - a.at for a, b in itertools.pairwise(faults)]
    assert max(gaps) < 30
    assert len(faults) > 60


def test_a_target_is_not_hit_again_before_it_is_planned_back() -> None:
    for seed in range(20):
        back: dict[str, float] = {}
        for fault in schedule(seed, 600, rollback=True):
            assert fault.at >= back.get(fault.target, 0), (seed, fault)
            back[fault.target] = fault.at + fault.planned_busy_s


def test_rollbacks_only_when_asked_and_only_the_kinds_chosen() -> None:
    assert ROLLBACK_KIND not in {f.kind for f in schedule(5, 600)}
    assert ROLLBACK_KIND in {f.kind for f in schedule(5, 600, rollback=True)}
    chosen = {f.kind for f in schedule(5, 600, only=["sigkill", "localstack-pause"])}
    assert chosen == {"sigkill", "localstack-pause"}

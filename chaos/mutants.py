"""Deliberate defects, to prove the checker catches what it is there to catch.

A mutant is a copy of the product's packages with one edit; `make chaos MUTANT=name`
runs the services and the CLI from that copy. Nothing here is in the product's code.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from infra.local.stack import ROOT

PACKAGES = ("services", "shared", "cli")


@dataclass(frozen=True)
class Mutant:
    path: str
    old: str
    new: str
    what: str


MUTANTS = {
    "no-refund": Mutant(
        "services/gateway/usecases/order_meme.py",
        "refund(bank, charge, kind, failure, settings.refund_durable_within_s)",
        "confirm(bank, charge, 0.0)",
        "a meme that fails keeps its charge: confirmed (final) instead of refunded",
    ),
    "no-duplicate-check": Mutant(
        "services/ledger/domain/apply.py",
        "            elif update.end.is_duplicate(event):\n"
        "                result.duplicates.append(event)\n",
        "            elif update.end.is_duplicate(event):\n"
        "                update.events.append(event)\n"
        "                update.balance += event.signed_amount\n",
        "the ledger counts an event it already applied (a redelivery) again",
    ),
}


def build(name: str, into: Path) -> Path:
    """The product's packages copied into `into`, with mutant `name`'s edit made."""
    mutant = MUTANTS[name]
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    target = into / mutant.path
    source = target.read_text()
    if source.count(mutant.old) != 1:
        raise RuntimeError(f"mutant {name}: {mutant.path} no longer reads as it expects")
    target.write_text(source.replace(mutant.old, mutant.new))
    return into

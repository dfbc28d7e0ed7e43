"""The oracle: what every balance must be, from the history alone, against what the
stores hold once the pipeline has drained and the documented procedures have run.

Expected balance = opening tokens + each credit key answered 202 once - the price of
every meme answered 200. Nothing else charges: an answer other than 200 (an error, a
dropped connection, a timeout) must have cost nothing. Pure: no I/O.

Two documented bounds, each allowed only where the history shows its fault, and
reported apart from the figures that must be 0:
- A Redis rollback (`ROLLBACK=1`) loses what Redis acknowledged after the snapshot and
  had not shipped: memes answered 200 and credits answered 202 between the snapshot and
  the restart may be missing from both books (a failover to a replica behind). And a
  meme answered in that window whose charge was pending in the snapshot gets its pending
  record back with the rollback: the sweeper refunds it (its confirmation was lost with
  the tail), so it may be free.
- A gateway killed, or frozen for longer than the charge settle margin, between writing
  a meme and confirming its charge leaves the charge to the sweeper, which refunds it:
  a meme answered 200 by that gateway just before (or, frozen mid-write, just after)
  may be free. Our loss, never the client's (docs/architecture.md, "Confirmed after
  the answer, not before").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Record

PRICES = {"text": 1, "ai": 2}
# Client-side slack around a gateway fault: the client records an answer when its own
# loop gets to it, a little after the gateway wrote it.
BEFORE_S, AFTER_S = 2.0, 1.0


@dataclass(frozen=True)
class Observed:
    """The books and the pipeline after the procedures: what the checker judges."""

    redis: dict[str, int | None]  # None: Redis does not hold the account
    mongo: dict[str, int | None]
    dead_letters: list[dict[str, Any]]
    reconcile_exit: int
    reconcile_output: str
    left_running: list[int]


@dataclass
class Expected:
    opening: int = 0
    credited: int = 0
    charged: int = 0
    may_be_unshipped_memes: int = 0  # tokens of 200s inside a rollback's window
    may_be_free: int = 0  # tokens of 200s written just as their gateway died or froze
    may_be_unshipped_credits: int = 0  # tokens of 202s inside a rollback's window
    unanswered_credits: int = 0  # keys never answered 202: either outcome is right

    @property
    def balance(self) -> int:
        return self.opening + self.credited - self.charged

    def allows(self, actual: int) -> bool:
        low = self.balance - self.may_be_unshipped_credits
        high = (
            self.balance + self.may_be_unshipped_memes + self.may_be_free + self.unanswered_credits
        )
        return low <= actual <= high


@dataclass
class Verdict:
    expected: dict[str, Expected]
    failures: list[str] = field(default_factory=list)
    lost: int = 0  # Σ tokens a balance holds below the history's figure
    extra: int = 0  # Σ tokens above it: a charge missing, a credit counted twice
    within_bounds: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def rollback_windows(records: list[Record]) -> list[tuple[float, float]]:
    """When an answer may have been undone by each rollback in the history: from just
    before the snapshot was asked for (an answer written then may be confirmed after
    the fork, so its pending record comes back) to just after Redis was back."""
    taken = [r["t"] for r in records if r["type"] == "snapshot"]
    back = [r["t"] for r in records if r["type"] == "recovered" and r["kind"] == "redis-rollback"]
    return [(t - BEFORE_S, b + AFTER_S) for t, b in zip(taken, back, strict=False)]


def recoveries(records: list[Record]) -> dict[tuple[str, float], float]:
    """When each fault's target was back, by (target, when the fault began)."""
    return {(r["target"], r["began"]): r["t"] for r in records if r["type"] == "recovered"}


def gateway_of(target: str) -> int | None:
    """The gateway's number for a fault's target `gateway-N`, else None."""
    return int(target.rsplit("-", 1)[1]) if target.startswith("gateway-") else None


def unconfirmed_windows(records: list[Record]) -> dict[int, list[tuple[float, float]]]:
    """Per gateway, when an answer it wrote may have gone unconfirmed: around its
    SIGKILL, and around the start and the end of a freeze longer than the margin."""
    margin = next((r["settle_margin_s"] for r in records if r["type"] == "run"), 0.0)
    back = recoveries(records)
    windows: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for fault in records:
        if fault["type"] != "fault" or (gateway := gateway_of(fault["target"])) is None:
            continue
        if fault["kind"] == "sigkill":
            windows[gateway].append((fault["t"] - BEFORE_S, fault["t"] + AFTER_S))
        elif fault["kind"] == "sigstop" and fault["hold_s"] > margin:
            windows[gateway].append((fault["t"] - BEFORE_S, fault["t"] + AFTER_S))
            began: float = fault["t"]
            resumed = back.get((fault["target"], began), began)
            windows[gateway].append((resumed, resumed + AFTER_S))
    return windows


def expectations(records: list[Record]) -> tuple[dict[str, Expected], list[str]]:
    """Each account's expected figures, and what the answers themselves got wrong."""
    expected: dict[str, Expected] = defaultdict(Expected)
    problems: list[str] = []
    windows = rollback_windows(records)
    unconfirmed = unconfirmed_windows(records)

    def in_window(t: float) -> bool:
        return any(start <= t <= end for start, end in windows)

    for record in records:
        if record["type"] == "account":
            expected[record["account"]].opening = record["tokens"]
        elif record["type"] == "meme" and record["status"] == 200:
            price = PRICES.get(record.get("kind") or "", 0)
            if record.get("charged") != price:
                problems.append(
                    f"{record['id']}: answered 200 for a {record.get('kind')} meme charging "
                    f"{record.get('charged')} tokens, its price is {price}"
                )
            account = expected[record["account"]]
            account.charged += price
            if in_window(record["t"]):
                account.may_be_unshipped_memes += price
            if any(a <= record["t"] <= b for a, b in unconfirmed.get(record["gateway"], [])):
                account.may_be_free += price
    for key, attempts in _credit_attempts(records).items():
        account = expected[attempts[0]["account"]]
        accepted = [a for a in attempts if a["status"] == 202]
        if not accepted:
            if any(a["status"] is None or a["status"] >= 500 for a in attempts):
                account.unanswered_credits += attempts[0]["amount"]
            continue
        account.credited += attempts[0]["amount"]
        if in_window(accepted[0]["t"]):
            account.may_be_unshipped_credits += attempts[0]["amount"]
        events = {a.get("event") for a in accepted}
        if len(events) > 1:
            named = sorted(map(str, events))
            problems.append(f"credit {key}: its 202s name different events {named}")
    return dict(expected), problems


def _credit_attempts(records: list[Record]) -> dict[str, list[Record]]:
    attempts: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record["type"] == "credit":
            attempts[record["key"]].append(record)
    return attempts


def check(records: list[Record], observed: Observed) -> Verdict:
    expected, problems = expectations(records)
    verdict = Verdict(expected, failures=problems)
    for account, figures in sorted(expected.items()):
        for book, balances in (("redis", observed.redis), ("mongo", observed.mongo)):
            actual = balances.get(account)
            if actual is None:
                if book == "mongo":
                    verdict.failures.append(f"{account}: MongoDB has no such account")
                continue
            off = actual - figures.balance
            if figures.allows(actual):
                verdict.within_bounds += abs(off)
                continue
            verdict.lost += max(0, -off)
            verdict.extra += max(0, off)
            verdict.failures.append(
                f"{account}: {book} balance {actual}, expected {figures.balance} "
                f"(opening {figures.opening} + credited {figures.credited} - charged "
                f"{figures.charged}; {off:+})"
            )
        redis, mongo = observed.redis.get(account), observed.mongo.get(account)
        if redis is not None and redis != mongo:
            verdict.failures.append(f"{account}: redis {redis} ≠ mongo {mongo}")
    drift = sum(r["found"].get("drift", 0) for r in records if r["type"] == "runbooks")
    if drift and not rollback_windows(records):
        verdict.failures.append(
            f"maas reconcile found {drift} accounts drifting once the pipeline was idle, "
            "with no rollback to explain it (settled, as its runbook says)"
        )
    for letter in observed.dead_letters:
        verdict.failures.append(f"dead letter left after the redrive: {letter}")
    if observed.reconcile_exit != 0:
        verdict.failures.append(
            f"maas reconcile exited {observed.reconcile_exit}:\n{observed.reconcile_output}"
        )
    if observed.left_running:
        verdict.failures.append(f"process groups left running: {observed.left_running}")
    return verdict


def statuses(records: list[Record], type_: str) -> Counter[str]:
    return Counter(str(r["status"] or r.get("error")) for r in records if r["type"] == type_)

"""The table a chaos run ends with, from the history and the checker's verdict."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

from chaos.checker import PRICES, Verdict, gateway_of, recoveries, statuses
from chaos.history import Record

RECOVERY_S = 10.0  # after a fault ends, errors still count against it for this long


def outages(records: list[Record]) -> dict[str, dict[str, float]]:
    """Per fault kind: how many, the memes sent while each lasted (and just after) that
    failed, and the worst client-visible outage: the longest stretch in which the
    fault's clients got no meme answered (200, or 402 for a dry account), by when the
    answers arrived. A gateway's fault is judged by the memes sent to that gateway; any
    other fault by all of them."""
    ends = recoveries(records)
    memes = [r for r in records if r["type"] == "meme"]
    last_sent = max((m["sent"] for m in memes), default=0.0)  # no clients after the load
    by_kind: dict[str, dict[str, float]] = defaultdict(
        lambda: {"count": 0, "failed": 0, "worst_outage_s": 0.0}
    )
    for fault in (r for r in records if r["type"] == "fault"):
        began: float = fault["t"]
        end = min(ends.get((fault["target"], began), began) + RECOVERY_S, last_sent)
        gateway = gateway_of(fault["target"])
        mine = [m for m in memes if gateway in (None, m["gateway"])]
        answered = sorted(
            m["t"] for m in mine if m["status"] in (200, 402) and began <= m["t"] <= end
        )
        gaps = [b - a for a, b in itertools.pairwise([began, *answered, max(began, end)])]
        row = by_kind[fault["kind"]]
        row["count"] += 1
        row["failed"] += sum(
            1 for m in mine if began <= m["sent"] <= end and (m["status"] or 500) >= 500
        )
        row["worst_outage_s"] = max(row["worst_outage_s"], round(max(gaps), 2))
    return dict(by_kind)


def tokens(records: list[Record]) -> dict[str, int]:
    charged = sum(
        PRICES.get(r.get("kind") or "", 0)
        for r in records
        if r["type"] == "meme" and r["status"] == 200
    )
    accepted = {
        r["key"]: r["amount"] for r in records if r["type"] == "credit" and r["status"] == 202
    }
    return {"charged": charged, "credited": sum(accepted.values())}


def render(records: list[Record], verdict: Verdict, facts: dict[str, Any]) -> str:
    lines = [
        f"# chaos run: seed {facts['seed']}, {facts['minutes']} min, commit {facts['commit']}"
        + (f", mutant {facts['mutant']}" if facts.get("mutant") else "")
        + (", rollback" if facts.get("rollback") else ""),
        "",
        f"load {facts['rate']:.0f} requests/s ({facts['rate'] / facts['saturation']:.0%} of a "
        f"measured {facts['saturation']:.0f}/s) over {facts['accounts']} accounts; drained in "
        f"{facts['drain_s']:.1f} s after the last fault; reconcile once idle: "
        f"{_counts(facts['found'])}; procedures: {_counts(facts['procedures'])}",
        "",
        "| fault | count | memes failed meanwhile | worst client-visible outage |",
        "|---|---|---|---|",
    ]
    for kind, row in sorted(outages(records).items()):
        lines.append(
            f"| {kind} | {row['count']} | {row['failed']} | {row['worst_outage_s']:.2f} s |"
        )
    lines += ["", "| requests | answers by status |", "|---|---|"]
    for type_ in ("meme", "credit"):
        counts = statuses(records, type_)
        shown = ", ".join(f"{status}: {n}" for status, n in counts.most_common())
        lines.append(f"| {type_} ({sum(counts.values())}) | {shown} |")
    money = tokens(records) | {"refunded": facts["refunded"]}
    lines += [
        "",
        "| tokens charged | refunded | credited | lost | counted twice or free | "
        "within documented bounds |",
        "|---|---|---|---|---|---|",
        f"| {money['charged']} | {money['refunded']} | {money['credited']} | {verdict.lost} "
        f"| {verdict.extra} | {verdict.within_bounds} |",
        "",
        "verdict: "
        + ("the books are exact" if verdict.ok else f"{len(verdict.failures)} failures"),
    ]
    free = [
        r
        for r in records
        if r["type"] == "meme" and r["status"] == 200 and r["id"] in facts["refunded_ids"]
    ]
    if free:
        lines += ["", f"memes answered 200 whose charge the journal shows refunded ({len(free)}):"]
        lines += [
            f"- {r['id']} {r['account']} gateway-{r['gateway']} sent {r['sent']:.2f} s, "
            f"answered {r['t']:.2f} s"
            for r in free[:20]
        ]
    return "\n".join(lines)


def failure_details(
    records: list[Record], verdict: Verdict, journal: list[Record], limit: int = 20
) -> str:
    """Each failure, and for an account's the history lines that touch it, and the
    journal's debits of requests not answered 200 that no counted refund gives back."""
    out: list[str] = []
    accounts_shown: Counter[str] = Counter()
    for failure in verdict.failures[:limit]:
        out.append(f"FAIL {failure}")
        account = failure.split(":", 1)[0]
        if account in verdict.expected and not accounts_shown[account]:
            accounts_shown[account] += 1
            mine = [r for r in records if r.get("account") == account]
            telling = [r for r in mine if r["type"] != "meme" or r["status"] != 200]
            out.append(
                f"  {len(mine)} history lines touch {account}; those other than a meme "
                f"answered 200 (up to 25):"
            )
            out += [f"    {r}" for r in telling[:25]]
            out += [f"    journal: {line}" for line in unrefunded(records, journal, account)]
    if len(verdict.failures) > limit:
        out.append(f"... and {len(verdict.failures) - limit} more")
    return "\n".join(out)


def unrefunded(records: list[Record], journal: list[Record], account: str) -> list[str]:
    """The account's debits (journal) whose request was answered other than 200 and
    that no refund counted in the journal gives back: where a client paid for nothing."""
    answers = {r["id"]: r.get("status") or r.get("error") for r in records if r["type"] == "meme"}
    mine = [e for e in journal if e["account"] == account and e.get("voided_for") is None]
    refunded = {e["request_id"] for e in mine if e["type"] == "refund"}
    return [
        f"debit {e['amount']} at {e['epoch']}:{e['seq']} for {e['request_id']}, answered "
        f"{answers.get(e['request_id'])}, no refund counted"
        for e in mine
        if e["type"] == "debit"
        and answers.get(e["request_id"]) != 200
        and e["request_id"] not in refunded
    ]


def _counts(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()) if n)
    return shown or "nothing"

"""`make chaos`: load and seeded random faults on a private stack, then the books checked.

    python -m chaos.run [--minutes 10] [--seed N] [--rollback] [--mutant NAME]
                        [--faults KIND,...] [--load-share 0.6]

Starts two gateways, two ledgers and the meme service over Redis (AOF), the store and
LocalStack on free loopback ports; measures saturation, then runs the workload at 60 %
of it (`--load-share`) while the nemesis injects the seed's faults; waits for the answers and the
pipeline, follows the runbooks with `maas`, and checks every balance against the
history (chaos/checker.py). Writes the history, the report and the services' logs under
chaos/results/, prints the report, and exits 1 if the checker finds anything.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from chaos import history as history_file
from chaos import mutants, nemesis, procedures, report
from chaos.checker import Observed, check
from chaos.history import History
from chaos.stack import GATEWAYS, ChaosStack
from chaos.workload import Workload
from infra.local.stack import ROOT, http_ok

RESULTS = Path(__file__).resolve().parent / "results"
LOAD_SHARE = 0.6
PROBE_S = 5.0
ANSWERS_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 300.0


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--rollback", action="store_true", help="also restore Redis snapshots")
    parser.add_argument("--mutant", choices=sorted(mutants.MUTANTS), help="a deliberate defect")
    parser.add_argument(
        "--faults",
        type=lambda text: text.split(","),
        default=None,
        help=f"only these kinds ({', '.join(sorted(nemesis.KINDS))})",
    )
    parser.add_argument(
        "--load-share",
        type=float,
        default=LOAD_SHARE,
        help=f"the load as a share of the measured saturation (default {LOAD_SHARE})",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time()) % 100_000
    unknown = set(args.faults or ()) - set(nemesis.KINDS)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    if not 0 < args.load_share <= 1:
        parser.error("--load-share must be above 0 and at most 1")
    return args


async def run(args: argparse.Namespace) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.results / f"{stamp}-seed{args.seed}{f'-{args.mutant}' if args.mutant else ''}"
    work = Path(tempfile.mkdtemp(prefix="maas-chaos-build-"))
    code_dir = mutants.build(args.mutant, work) if args.mutant else ROOT
    stack = ChaosStack(code_dir=code_dir)
    history = History(out / "history.jsonl")
    seconds = args.minutes * 60
    faults = nemesis.schedule(args.seed, seconds, args.rollback, args.faults)
    history.write(
        "run", seed=args.seed, minutes=args.minutes, rollback=args.rollback, mutant=args.mutant,
        settle_margin_s=stack.settings.charge_settle_margin_s, faults=[asdict(f) for f in faults],
        commit=commit(),
    )  # fmt: skip
    log(f"seed {args.seed}: {len(faults)} faults over {args.minutes} min; results in {out}")
    facts: dict[str, Any] = {"seed": args.seed, "minutes": args.minutes, "commit": commit()}
    facts |= {"mutant": args.mutant, "rollback": args.rollback}
    try:
        observed = await drive(
            stack, history, faults, args.seed, seconds, args.load_share, facts, out
        )
    finally:
        history.close()
        await asyncio.to_thread(stack.stop)
        shutil.copytree(stack.logs(), out / "logs", dirs_exist_ok=True)
        stack.remove()
        shutil.rmtree(work, ignore_errors=True)
    observed = replace(observed, left_running=stack.left_running())
    records = history_file.read(out / "history.jsonl")
    verdict = check(records, observed)
    table = report.render(records, verdict, facts)
    journal_file = out / "journal.jsonl"
    journal = history_file.read(journal_file) if journal_file.exists() else []
    details = report.failure_details(records, verdict, journal)
    (out / "report.md").write_text(table + ("\n\n```\n" + details + "\n```\n" if details else "\n"))
    print(table)
    if details:
        print(details)
    print(f"\nhistory, report and logs: {out}")
    return 0 if verdict.ok else 1


async def drive(
    stack: ChaosStack,
    history: History,
    faults: list[nemesis.Fault],
    seed: int,
    seconds: float,
    load_share: float,
    facts: dict[str, Any],
    out: Path,
) -> Observed:
    """Start the stack, load it while the nemesis works, drain, follow the runbooks, and
    read the books; what the report needs goes into `facts`."""
    await asyncio.to_thread(lambda: asyncio.run(stack.start()))
    log("stack up")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        gateways = [stack.url(name) for name in GATEWAYS]
        workload = Workload(stack.settings, gateways, history, seed, http)
        await workload.open_accounts()
        await wait_ai_ready(stack)
        saturation = await workload.saturate(PROBE_S)
        rate = load_share * saturation
        history.write("load", saturation=saturation, rate=rate)
        log(f"saturation {saturation:.0f}/s; load at {rate:.0f}/s with the nemesis")
        load = asyncio.create_task(workload.run(rate, seconds))
        await nemesis.Nemesis(stack, history, out).run(faults, asyncio.get_running_loop().time())
        await load
        history.write("quiesce")
        log("faults over; waiting for the answers and the pipeline")
        await workload.settle(ANSWERS_TIMEOUT_S)
        quiet = time.monotonic()
        await procedures.drained(stack, DRAIN_TIMEOUT_S)
        facts["drain_s"] = time.monotonic() - quiet
        steps, found = await procedures.follow_runbooks(stack, history, DRAIN_TIMEOUT_S)
        history.write("runbooks", steps=steps, found=found)
        facts |= {"procedures": steps, "found": found}
        observed, journal = await procedures.observe(
            stack, [a.id for a in workload.accounts], out / "journal.jsonl"
        )
    facts |= journal | {"rate": rate, "saturation": saturation, "accounts": len(workload.accounts)}
    return observed


def commit() -> str:
    """The commit the run's code is at (a mutant's is that commit, edited)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


async def wait_ai_ready(stack: ChaosStack, timeout_s: float = 60) -> None:
    """AI memes are asked for only once the meme service says its upstream is there."""
    deadline = time.monotonic() + timeout_s
    url = f"{stack.url('meme')}/readyz"
    while not await asyncio.to_thread(http_ok, url, b'"ai_available":true'):
        if time.monotonic() > deadline:
            raise RuntimeError("the meme service never reported AI available")
        await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """SIGTERM stops a run as Ctrl-C does: the stack is stopped and its logs kept."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())

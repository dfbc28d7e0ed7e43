"""The bench's Markdown: what docs/performance.md quotes and what stdout shows."""

from __future__ import annotations

from typing import Any

PROCESSES = (
    "gateway",
    "meme",
    "redis",
    "ledger",
    "localstack",
    "ferretdb",
    "postgres",
    "hello",
    "fake-openai",
)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float) -> str:
    return f"{value:.1f}"


def errors(scenario: dict[str, Any]) -> str:
    counts = scenario.get("errors", {})
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def throughput(scenarios: list[dict[str, Any]]) -> str:
    """Each rate beside its ceiling in the same run: the bare aiohttp server's."""
    hello = next((s["rps"] for s in scenarios if s["name"] == "hello"), None)
    rows = []
    for s in scenarios:
        lat = s["latency_ms"]
        offered = f"{s['offered_rps']:.0f}" if s.get("offered_rps") else "max"
        rows.append(
            [
                s["name"],
                s["what"],
                offered,
                f"{s['rps']:.0f}",
                f"{s['rps'] / hello:.3f}" if hello and s["name"] != "redis" else "-",
                ms(lat["p50"]),
                ms(lat.get("p90", lat.get("p99", 0))),
                ms(lat["p99"]),
                ms(lat["max"]),
                errors(s) if "statuses" in s else "-",
            ]
        )
    header = ["scenario", "what", "offered/s", "req/s", "/ hello", "p50 ms", "p90 ms", "p99 ms"]
    return table([*header, "max ms", "non-200"], rows)


def processes(scenarios: list[dict[str, Any]]) -> str:
    """CPU as % of one core over the scenario, and the peak RSS during it."""
    rows = []
    for s in scenarios:
        cells = [s["name"]]
        for name in PROCESSES:
            usage = s["processes"].get(name)
            if usage is None:
                cells.append("-")
                continue
            count = f" x{usage['processes']}" if usage["processes"] > 1 else ""
            cells.append(f"{usage['cpu_pct']:.0f}% / {usage['peak_rss_mb_max']:.0f} MB{count}")
        generator = s.get("wrk_cpu_s", s.get("generator_cpu_s"))
        seconds = s["seconds"]
        cells.append(f"{100 * generator / seconds:.0f}%" if generator is not None else "-")
        machine = s.get("machine")
        cells.append(
            f"{machine['others_pct_of_one_core']:.0f}% ({machine['busy_pct_of_all_cores']:.0f}%)"
            if machine
            else "-"
        )
        rows.append(cells)
    header = ["scenario", *PROCESSES, "load generator", "not ours (machine busy)"]
    return table(header, rows)


def tracing(scenarios: list[dict[str, Any]]) -> str:
    """What exporting traces costs: `full` (off) against the traced runs of `full`."""
    rows = []
    off = next((s for s in scenarios if s["name"] == "full"), None)
    for s in scenarios:
        if s["name"] != "full" and not s["name"].startswith("traced-"):
            continue
        memes = max(1.0, s["rps"] * s["seconds"])
        cells = [s["name"], f"{s['rps']:.0f}"]
        cells.append(f"{s['rps'] / off['rps']:.2f}" if off and off["rps"] else "-")
        for name in ("gateway", "meme", "ledger"):
            usage = s["processes"].get(name)
            cells.append(f"{1e6 * usage['cpu_s'] / memes:.0f}" if usage else "-")
        cells.append(ms(s["latency_ms"]["p99"]))
        rows.append(cells)
    header = ["scenario", "req/s", "vs off", "gateway µs/meme", "meme µs/meme",
              "ledger µs/meme", "p99 ms"]  # fmt: skip
    return table(header, rows) if len(rows) > 1 else ""


def cpu_per_request(scenarios: list[dict[str, Any]]) -> str:
    """CPU µs per answered request and process, and as a multiple of the bare server's
    CPU per request in the same run (hello's own process)."""
    hello = next((s for s in scenarios if s["name"] == "hello"), None)
    ceiling = (
        1e6 * hello["processes"]["hello"]["cpu_s"] / hello["requests"]
        if hello and hello.get("requests")
        else None
    )
    names = ("gateway", "meme", "ledger", "ferretdb", "postgres", "localstack", "redis")
    rows = []
    for s in scenarios:
        if s["name"] in ("hello", "redis") or s["name"].endswith("/text") or not s.get("requests"):
            continue
        requests = s["requests"]
        if s["name"].endswith("/ai"):  # both loads ran together: count both
            requests += next(x["requests"] for x in scenarios if x["name"] == "ai/text")
        cells = [s["name"]]
        for name in names:
            usage = s["processes"].get(name)
            us = 1e6 * usage["cpu_s"] / requests if usage else None
            times = f" ({us / ceiling:.1f}x)" if us is not None and ceiling and name in (
                "gateway", "meme") else ""  # fmt: skip
            cells.append("-" if us is None else f"{us:.0f}{times}")
        rows.append(cells)
    note = f"hello: {ceiling:.0f} µs per request." if ceiling else "no hello run."
    return note + "\n\n" + table(["scenario", *(f"{n} µs" for n in names)], rows)


def _loop_lag(lags: dict[str, float | None] | None) -> str:
    """Each service's event-loop lag p99 (a histogram bucket's bound, so ≤)."""
    if not lags:
        return "-"
    return " / ".join("n/a" if v is None else f"≤ {v:g}" for v in lags.values())


def pipeline(scenarios: list[dict[str, Any]]) -> str:
    rows = []
    for s in scenarios:
        if "books" not in s or s["name"].endswith("/text"):
            continue
        b, p = s["books"], s["pipeline"]
        sqs = p["sqs_requests_per_1000_memes"]
        lag = p["ledger_lag_p99_s_le"]
        rows.append(
            [
                s["name"].removesuffix("/ai"),
                str(b["tokens_charged_by_200"]),
                str(b["delta_redis"]),
                "pending" if b["delta_mongo"] is None else str(b["delta_mongo"]),
                "exact" if b["exact"] else "**MISMATCH**",
                f"{p['drain_s']:.2f}" if p["drained"] else f"> {p['drain_s']:.0f} (still behind)",
                f"{p['apply_rate_eps']:.0f}",
                "n/a" if lag is None else f"≤ {lag:g}",
                "n/a" if sqs is None else f"{sqs:.2f}",
                _log_rate(p.get("log_lines_per_1000_memes")),
                _loop_lag(p.get("loop_lag_p99_s_le")),
            ]
        )
    header = [
        "scenario",
        "Σ charged (200s)",
        "Δ Redis",
        "Δ MongoDB",
        "books",
        "drain s",
        "ledger events/s",
        "ledger lag p99 s",
        "SQS req / 1000 memes",
        "log lines / 1000 memes",
        "loop lag p99 s (gateway / meme / ledger)",
    ]
    return table(header, rows)


def _log_rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.3f}"


def ledger_scaling(result: dict[str, Any]) -> str:
    runs = result.get("ledger_scaling", [])
    one = next((s["apply_rate_eps"] for s in runs if s["ledgers"] == 1), None)
    rows = [
        [
            str(s["ledgers"]),
            str(s["events"]),
            f"{s.get('start_s', 0):.2f}",
            f"{s['drain_s']:.2f}" if s["drained"] else f"> {s['drain_s']:.0f} (still behind)",
            "n/a" if s["apply_rate_eps"] is None else f"{s['apply_rate_eps']:.0f}",
            f"{s['apply_rate_eps'] / one:.2f}" if one and s["apply_rate_eps"] else "n/a",
            "exact" if s["exact"] else "**MISMATCH**",
        ]
        for s in runs
    ]
    header = ["ledger processes", "backlog events", "start s (to first apply)", "drain s",
              "events/s applied", "x one ledger", "books"]  # fmt: skip
    return table(header, rows)


def final(result: dict[str, Any]) -> str:
    b = result["books"]
    if not b["drained"]:
        redis = "exact" if b["redis_exact"] else "**MISMATCH**"
        verdict = f"Redis side {redis}, MongoDB side **not verified** (ledger behind)"
    else:
        verdict = "exact" if b["exact"] else "**MISMATCH**"
    drained = (
        f"the ledger caught up {b['final_drain_s']:.1f} s after the last scenario"
        if b["drained"]
        else f"the ledger was still {b['accounts_behind']} accounts behind after "
        f"{b['final_drain_s']:.0f} s"
    )
    return (
        f"Whole run: Σ tokens charged by 200 responses = {b['tokens_charged_by_200']}, "
        f"Δ Σ Redis = {b['delta_redis']}, Δ Σ MongoDB = {b['delta_mongo']}: {verdict}; "
        f'{drained}. "pending" above: the ledger had not caught up within the scenario\'s '
        "drain timeout, so that scenario's MongoDB side is covered by this whole-run check."
    )


def goals(result: dict[str, Any]) -> str:
    rows = [
        [t["target"], t["goal"], t["measured"], "met" if t["met"] else "**missed**"]
        for t in result["targets"]
    ]
    return table(["target", "goal", "measured", ""], rows)


SCALE_ROWS = (
    ("memes/s at saturation (active accounts)", "memes_per_s"),
    ("first charge p50 ms (hydrates)", "first_charge_ms_p50"),
    ("warm charge p50 ms", "warm_charge_ms_p50"),
    ("ledger events/s (load + drain)", "apply_rate_eps"),
    ("ledger drain s", "drain_s"),
    ("ledger lag p99 s (≤ bucket)", "ledger_lag_p99_s_le"),
    ("`maas ledger history` query p50 ms", "history_ms_p50"),
    ("`maas ledger history` query p99 ms", "history_ms_p99"),
    ("`maas ledger history` command s", "history_command_s"),
    ("`maas reconcile` command s", "reconcile_command_s"),
    ("store CPU µs per meme (FerretDB + PostgreSQL)", "store_cpu_us_per_meme"),
    ("books exact", "exact"),
    ("seeding s (bulk)", "seed_s"),
)


def scale(result: dict[str, Any]) -> str:
    small, large = result["sizes"]
    ratios = result["large_over_small"]
    rows = [
        [label, str(small.get(key)), str(large.get(key)), str(ratios.get(key, ""))]
        for label, key in SCALE_ROWS
    ]
    header = [
        "figure",
        f"small: {small['accounts']:,} accounts, {small['journal_entries']:,} entries, "
        f"{small['active_accounts']:,} active",
        f"large: {large['accounts']:,} accounts, {large['journal_entries']:,} entries, "
        f"{large['active_accounts']:,} active",
        "large / small (per op)",
    ]
    return table(header, rows)


def stalls(scenarios: list[dict[str, Any]]) -> str:
    """Loop stalls of `STALL_S` or more per scenario and service, and where they were."""
    rows = []
    for s in scenarios:
        found = s.get("pipeline", {}).get("stalls")
        if not found or s["name"].endswith("/text"):
            continue
        cells = [
            f"{f['stalls']} ({f['longest_ms']} ms)" if f["stalls"] else "0"
            for f in (found.get(name, {"stalls": 0}) for name in ("gateway", "meme", "ledger"))
        ]
        where = "; ".join(
            f"{name}: {frame} ({n})"
            for name in ("gateway", "meme", "ledger")
            for frame, n in found.get(name, {}).get("where", [])[:2]
        )
        rows.append([s["name"], *cells, where or "-"])
    header = ["scenario", "gateway (longest)", "meme", "ledger", "where (innermost frame of ours)"]
    return table(header, rows)


def profiles(result: dict[str, Any]) -> str:
    found = result.get("profiles") or {}
    if "error" in found:
        return f"No profiles: {found['error']}"
    parts = []
    for name, p in found.items():
        rows = [[frame, f"{share:.1f}"] for frame, share in p["self"][:8]]
        parts.append(f"{name}, {p['samples']} samples; top frames by own time:")
        parts.append(table(["frame", "% of samples"], rows))
        rows = [[frame, f"{share:.1f}"] for frame, share in p["ours_inclusive"][:8]]
        parts.append(f"{name}: our functions by time spent in them and below:")
        parts.append(table(["function", "% of samples"], rows))
    return "\n\n".join(parts)


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    scenarios = result["scenarios"]
    return "\n\n".join(
        [
            f"### MaaS bench, {result['at']}{' (quick)' if result['quick'] else ''}",
            f"{m['nproc']} x {m['cpu']}, {m['ram_gb']} GB RAM, Linux {m['kernel']}, "
            f"Python {m['python']}; gateway workers: {result['gateway_workers']}; "
            f"wrk -t1 -c{result['connections']}; wall time {result['wall_s']} s.",
            "#### Targets",
            goals(result),
            "#### Throughput and latency",
            throughput(scenarios),
            "#### After the load: books and pipeline",
            pipeline(scenarios),
            final(result),
            "#### Ledger processes: one backlog applied by 1 and by 3",
            ledger_scaling(result),
            "#### CPU per answered request, µs (x the bare server's, for the gateway and meme)",
            cpu_per_request(scenarios),
            "#### CPU (% of one core) / peak RSS per process",
            "The last column is CPU spent by processes the bench did not start (the machine "
            "is shared), and in brackets how busy all cores were.",
            processes(scenarios),
            "#### Event-loop stalls (100 ms or more, shared/stalls.py)",
            stalls(scenarios),
            "#### Profiles at saturation (py-spy, `profiled`)",
            profiles(result),
            "#### Tracing: `full` with traces exported over OTLP/HTTP (CPU per meme)",
            tracing(scenarios),
            "#### Scale: a small store and a large one",
            scale(result["scale"]),
        ]
    )

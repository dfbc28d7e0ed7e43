"""CPU time and peak resident memory of a process tree, read from /proc.

CPU is utime+stime from /proc/<pid>/stat; the peak is VmHWM from /proc/<pid>/status,
reset before each scenario (writing 5 to clear_refs) so it is the scenario's peak, not
the process's lifetime peak. Children (e.g. gateway workers) are found by parent pid.
Children that start and end within a scenario (PostgreSQL's autovacuum workers) are
never seen alive; their CPU is in their parent's cutime+cstime once it reaped them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Sample:
    pid: int
    cpu_s: float
    hwm_mb: float
    rss_mb: float
    reaped_cpu_s: float = 0.0  # of the children it has waited for (cutime + cstime)


def _stat(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after it are fixed.
    return raw[raw.rindex(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def tree(root: int) -> list[int]:
    """The root and all its descendants that are alive now."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            ppid = parent_of(int(entry.name))
            if ppid is not None:
                parents[int(entry.name)] = ppid
    found, frontier = [root], [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == current]
        found += children
        frontier += children
    return [pid for pid in found if pid == root or pid in parents]


def sample(pid: int) -> Sample | None:
    fields = _stat(pid)
    if fields is None:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    reaped = (int(fields[13]) + int(fields[14])) / TICKS
    hwm = rss = 0.0
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return Sample(pid, cpu, hwm, rss, reaped)


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):
        (PROC / str(pid) / "clear_refs").write_text("5")


def snapshot(roots: dict[str, int]) -> dict[str, dict[int, Sample]]:
    """Samples of every process under each named root."""
    result: dict[str, dict[int, Sample]] = {}
    for name, root in roots.items():
        samples = {pid: s for pid in tree(root) if (s := sample(pid)) is not None}
        result[name] = samples
    return result


def reset_all(roots: dict[str, int]) -> None:
    for root in roots.values():
        for pid in tree(root):
            reset_peak(pid)


def usage(
    before: dict[str, dict[int, Sample]], after: dict[str, dict[int, Sample]], seconds: float
) -> dict[str, dict[str, float | int]]:
    """Per named tree: CPU seconds and share of one core, and the peak RSS of its processes.

    CPU counts the processes alive at the end, and what their parents reaped meanwhile,
    less what those reaped had spent before the scenario (counted as theirs then)."""
    result: dict[str, dict[str, float | int]] = {}
    for name, samples in after.items():
        start = before.get(name, {})
        cpu = sum(
            s.cpu_s + s.reaped_cpu_s - (start[p].cpu_s + start[p].reaped_cpu_s if p in start else 0)
            for p, s in samples.items()
        ) - sum(s.cpu_s + s.reaped_cpu_s for p, s in start.items() if p not in samples)
        result[name] = {
            "processes": len(samples),
            "cpu_s": round(cpu, 2),
            "cpu_pct": round(100 * cpu / seconds, 1) if seconds > 0 else 0.0,
            "peak_rss_mb_max": round(max((s.hwm_mb for s in samples.values()), default=0.0), 1),
            "peak_rss_mb_sum": round(sum(s.hwm_mb for s in samples.values()), 1),
        }
    return result


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS

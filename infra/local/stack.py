"""The local stack without Docker: Redis, LocalStack SQS, FerretDB on PostgreSQL and the
three services as plain processes on loopback, with data, logs and PID files under `.run/`.

    python -m infra.local.stack up       # start in the background, return once healthy
    python -m infra.local.stack run      # the same in the foreground; Ctrl-C stops all
    python -m infra.local.stack down     # stop everything this stack started
    python -m infra.local.stack status
    python -m infra.local.stack --run-dir DIR up   # another stack's data, logs and pids

Ports come from the settings module (MAAS_REDIS_URL, MAAS_GATEWAY_PORT, ...). The
tests start the same servers through `start()` on free ports.

A server counts as running when its recorded process is neither gone nor a zombie (PID 1
may never reap it) and it answers its health check; `up` starts again whatever does not,
and leaves the rest alone. `run` stops everything on Ctrl-C even when its stdout reader
(`make run | tee`) died first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from shared.auth import issue_dev_token
from shared.settings import Settings
from shared.sqs import provision_queues, sqs_client

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
FERRETDB = ROOT / ".ferretdb" / "ferretdb"
MONGO_JAVA_SERVER = ROOT / ".mongo-java-server"
LOCAL_STORES = ("ferretdb", "mongo-java-server")
POSTGRES_USER = "postgres"
LOCALSTACK_PYTHON = ROOT / ".venv-localstack" / "bin" / "python"
DEMO_ACCOUNTS = (("demo", 100, ["ai"]), ("demo-admin", 1000, ["admin", "ai"]))
DEAD_STATES = ("Z", "X")  # zombie, dead
# Stopped in this order, each group in parallel: the services, then what they use.
STOP_ORDER = (
    ("gateway", "ledger", "meme"),
    ("ferretdb", "localstack", "redis", "redis-cache", "jaeger"),
    ("postgres",),
)
# Jaeger all in one (`make run TRACING=1`, built by install_jaeger.sh): its own ports.
CACHE = Path(
    os.environ.get("MAAS_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maas"
)
JAEGER = CACHE / "tools" / "bin" / "jaeger"
JAEGER_OTLP_HTTP_PORT = 4318
JAEGER_UI_PORT = 16686


@dataclass
class Server:
    name: str
    port: int
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT  # Python services import the tree they start in


def tcp_answers(port: int, probe: bytes = b"", expect: bytes = b"") -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            if probe:
                conn.sendall(probe)
                return conn.recv(64).startswith(expect)
            return True
    except OSError:
        return False


def http_ok(url: str, contains: bytes = b"") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200 and contains in response.read())
    except OSError:
        return False


# MAAS_LOCAL_PORTS=first-last: draw ports from this range, one after the other, instead of
# asking the kernel. Parallel test workers each get a range of their own below the
# kernel's ephemeral range, so no other worker, and no outgoing connection, can take a
# port between its choice and the server's bind.
_next_ports: Iterator[int] | None = None


def free_port() -> int:
    global _next_ports  # noqa: PLW0603 - one cursor per process through its range
    if port_range := os.environ.get("MAAS_LOCAL_PORTS"):
        if _next_ports is None:
            first, last = (int(bound) for bound in port_range.split("-"))
            _next_ports = iter(range(first, last + 1))
        for port in _next_ports:
            if bindable(port):
                return port
        raise RuntimeError(f"no free port left in MAAS_LOCAL_PORTS={port_range}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _redis(name: str, port: int, data_dir: Path, *config: str) -> Server:
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)]
    return Server(
        name,
        port,
        [*argv, "--save", "", "--daemonize", "no", *config],
        ready=lambda: tcp_answers(port, b"PING\r\n", b"+PONG"),
    )


def redis_server(port: int, data_dir: Path, *extra: str) -> Server:
    """Redis as the design asks: AOF every second, never evict a balance."""
    return _redis(
        "redis", port, data_dir,
        "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
        *extra,
    )  # fmt: skip


def cache_redis_server(port: int, data_dir: Path, maxmemory: str = "64mb") -> Server:
    """The cache instance: bounded memory, least recently used keys evicted, no disk."""
    return _redis(
        "redis-cache", port, data_dir,
        "--appendonly", "no", "--maxmemory", maxmemory, "--maxmemory-policy", "allkeys-lru",
    )  # fmt: skip


def localstack_server(port: int, data_dir: Path) -> Server:
    return Server(
        "localstack",
        port,
        [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
        ready=lambda: (
            http_ok(f"http://127.0.0.1:{port}/_localstack/health", b'"sqs": "running"')
            or http_ok(f"http://127.0.0.1:{port}/_localstack/health", b'"sqs": "available"')
        ),
        env={
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "SERVICES": "sqs",
            "DNS_ADDRESS": "0",
            "LOCALSTACK_VOLUME_DIR": str(data_dir),
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "SQS_ENDPOINT_STRATEGY": "path",
        },
    )


def postgres_bin() -> Path:
    """The newest PostgreSQL installed (Debian keeps each major version apart)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run infra/local/install.sh")
    return found[-1].parent


def as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, drop to the `postgres` user."""
    if os.geteuid() != 0:
        return []
    return [
        "setpriv",
        f"--reuid={POSTGRES_USER}",
        f"--regid={POSTGRES_USER}",
        "--init-groups",
        "--",
    ]


def prepare_postgres_dir(data_dir: Path) -> None:
    """Create the cluster once; C collation, so jsonb orders strings as BSON does."""
    if os.geteuid() == 0:
        for parent in data_dir.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise RuntimeError(
                    f"the {POSTGRES_USER} user cannot reach {data_dir} ({parent} is closed "
                    "to others); keep the data in a directory it can traverse"
                )
        shutil.chown(data_dir, POSTGRES_USER, POSTGRES_USER)
    if (data_dir / "cluster" / "PG_VERSION").exists():
        return
    subprocess.run(
        [
            *as_postgres_user(),
            str(postgres_bin() / "initdb"),
            f"--pgdata={data_dir / 'cluster'}",
            f"--username={POSTGRES_USER}",
            "--auth=trust",
            "--locale=C",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )


def postgres_server(port: int, data_dir: Path, *settings: str) -> Server:
    """A private PostgreSQL cluster in `data_dir`, reachable only by its unix socket there.

    `settings` are extra `name=value` server settings.
    """
    prepare_postgres_dir(data_dir)
    options = ["listen_addresses=", f"unix_socket_directories={data_dir}", *settings]
    return Server(
        "postgres",
        port,
        [
            *as_postgres_user(),
            str(postgres_bin() / "postgres"),
            f"--port={port}",
            f"-D{data_dir / 'cluster'}",
            *(f"-c{option}" for option in options),
        ],
        ready=lambda: (
            subprocess.run(
                [
                    str(postgres_bin() / "pg_isready"),
                    "-q",
                    f"-h{data_dir}",
                    f"-p{port}",
                    f"-U{POSTGRES_USER}",
                ],
                check=False,
            ).returncode
            == 0
        ),
    )


def postgres_url(port: int, data_dir: Path) -> str:
    return f"postgres://{POSTGRES_USER}@/{POSTGRES_USER}?host={data_dir}&port={port}"


def ferretdb_server(port: int, data_dir: Path, postgres: str) -> Server:
    """FerretDB speaking MongoDB's protocol in front of PostgreSQL (`postgres_url`)."""
    return Server(
        "ferretdb",
        port,
        [
            str(FERRETDB),
            "--handler=postgresql",
            f"--postgresql-url={postgres}",
            f"--listen-addr=127.0.0.1:{port}",
            "--telemetry=disable",
            f"--state-dir={data_dir}",
            "--debug-addr=127.0.0.1:0",
            "--log-level=warn",
        ],
        ready=lambda: tcp_answers(port),
    )


def mongo_java_server(port: int, data_dir: Path) -> Server:
    """mongo-java-server on an H2 file in `data_dir`, committed after every write.

    The serial collector keeps the JVM from starting a GC thread per core on a shared machine.
    """
    return Server(
        "mongo-java-server",
        port,
        [
            "java",
            "-XX:+UseSerialGC",
            "-cp",
            f"{MONGO_JAVA_SERVER / 'classes'}:{MONGO_JAVA_SERVER / 'lib'}/*",
            "DurableStore",
            str(port),
            str(data_dir / "store.mv.db"),
        ],
        ready=lambda: tcp_answers(port),
    )


def local_store() -> str:
    """Which MongoDB-compatible server the local stack runs: MAAS_LOCAL_STORE, else FerretDB."""
    name = os.environ.get("MAAS_LOCAL_STORE") or LOCAL_STORES[0]
    if name not in LOCAL_STORES:
        raise ValueError(f"MAAS_LOCAL_STORE={name!r}: choose one of {', '.join(LOCAL_STORES)}")
    return name


def store_servers(
    port: int, data_dir: Path, *postgres_settings: str, store: str = ""
) -> list[Server]:
    """The MongoDB-compatible store on `port` (`store`, else `local_store()`); start in order.

    FerretDB: PostgreSQL, then FerretDB. PostgreSQL listens on a unix socket only, named
    after `port` too (no TCP port taken). mongo-java-server is one process and ignores
    `postgres_settings`.
    """
    if (store or local_store()) == "mongo-java-server":
        data_dir.mkdir(parents=True, exist_ok=True)
        return [mongo_java_server(port, data_dir)]
    dirs = {name: data_dir / name for name in ("postgres", "ferretdb")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return [
        postgres_server(port, dirs["postgres"], *postgres_settings),
        ferretdb_server(port, dirs["ferretdb"], postgres_url(port, dirs["postgres"])),
    ]


def service(name: str, port: int, env: dict[str, str]) -> Server:
    return Server(
        name,
        port,
        [sys.executable, "-m", f"services.{name}"],
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
        env=env,
    )


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    log: Path


def start(server: Server, run_dir: Path, timeout_s: float = 60) -> Running:
    """Start a server as a plain process and wait until it answers."""
    if tcp_answers(server.port):
        raise RuntimeError(
            f"port {server.port} for {server.name} is taken by another process; "
            "stop it or choose another port (see shared/settings.py)"
        )
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    log = run_dir / "logs" / f"{server.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            server.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **server.env},
            cwd=server.cwd,
            start_new_session=True,
        )
    running = Running(server, process, log)
    wait_ready(running, timeout_s)
    return running


def wait_ready(running: Running, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not running.server.ready():
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.server.name} exited:\n{tail(running.log)}")
        if time.monotonic() > deadline:
            stop_pid(running.process.pid)
            raise RuntimeError(
                f"{running.server.name} not ready in {timeout_s} s:\n{tail(running.log)}"
            )
        time.sleep(0.05)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def process_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and process group, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[2])


def running(pid: int) -> bool:
    """Alive and not a zombie: a killed process whose parent does not reap it (PID 1
    here does not) stays a zombie, which `kill -0` reports as alive."""
    stat = process_stat(pid)
    return stat is not None and stat[0] not in DEAD_STATES


def group_running(pgid: int) -> bool:
    """Any live process in the group (a server's workers outlive their leader)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = process_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in DEAD_STATES:
                return True
    return False


def stop_pid(pid: int, timeout_s: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL what is left after the timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not group_running(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def backends(settings: Settings, run_dir: Path) -> list[list[Server]]:
    """Groups that start side by side; the servers of one group start in order."""
    names = ("redis", "redis-cache", "localstack", "store")
    dirs = {name: run_dir / "data" / name for name in names}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return [
        [redis_server(settings.redis_port, dirs["redis"])],
        [cache_redis_server(settings.cache_redis_port, dirs["redis-cache"])],
        [localstack_server(settings.sqs_port, dirs["localstack"])],
        store_servers(settings.mongo_port, dirs["store"]),
    ]


def jaeger_server(data_dir: Path) -> Server:
    """Jaeger all in one, in memory: OTLP on 4317 (gRPC) and 4318 (HTTP), the UI on 16686."""
    return Server(
        "jaeger",
        JAEGER_UI_PORT,
        [str(JAEGER)],
        ready=lambda: http_ok(f"http://127.0.0.1:{JAEGER_UI_PORT}/"),
        cwd=data_dir,
    )


def tracing_env(tracing: bool) -> dict[str, str]:
    """The `OTEL_*` settings that send the services' traces to the local Jaeger."""
    if not tracing:
        return {}
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{JAEGER_OTLP_HTTP_PORT}"}


def services(settings: Settings, tracing: bool = False) -> list[Server]:
    env = tracing_env(tracing)
    return [
        service("meme", settings.meme_port, env),
        service("ledger", settings.ledger_port, env),
        service("gateway", settings.gateway_port, env),
    ]


async def provision(settings: Settings) -> None:
    async with sqs_client(settings) as sqs:
        await provision_queues(sqs, settings)


def seed(settings: Settings) -> dict[str, str]:
    """Create the demo accounts through the admin API; returns a token for each."""
    admin = issue_dev_token(settings, "operator", ["admin"], 3600)
    tokens = {}
    for account, balance, roles in DEMO_ACCOUNTS:
        request = urllib.request.Request(
            f"http://127.0.0.1:{settings.gateway_port}/v1/accounts",
            data=f'{{"id": "{account}", "tokens": {balance}}}'.encode(),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=5).close()  # noqa: S310
        except urllib.error.HTTPError as error:
            if error.code != 409:
                raise
        tokens[account] = issue_dev_token(settings, account, roles, 24 * 3600)
    return tokens


def pidfile(run_dir: Path, name: str) -> Path:
    return run_dir / "pids" / f"{name}.pid"


def recorded_pid(run_dir: Path, name: str) -> int | None:
    """The pid this stack recorded for `name`, if that process still runs."""
    try:
        pid = int(pidfile(run_dir, name).read_text())
    except (OSError, ValueError):
        return None
    return pid if running(pid) else None


def up(settings: Settings, run_dir: Path, started: list[Running], tracing: bool = False) -> None:
    """Start what is not running yet, provision the queues, seed the demo accounts.

    What this call starts is appended to `started` as it goes, so a caller that fails
    half-way stops those and nothing that was running before.
    """
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)

    def start_once(server: Server) -> None:
        pid = recorded_pid(run_dir, server.name)
        if pid is not None and server.ready():
            return
        if pid is not None:  # alive but not answering: replace it
            stop_pid(pid)
        running = start(server, run_dir)
        started.append(running)
        pidfile(run_dir, server.name).write_text(str(running.process.pid))

    def start_in_order(servers: list[Server]) -> None:
        for server in servers:
            start_once(server)

    groups = backends(settings, run_dir)
    if tracing:
        (run_dir / "data" / "jaeger").mkdir(parents=True, exist_ok=True)
        groups.append([jaeger_server(run_dir / "data" / "jaeger")])
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        list(pool.map(start_in_order, groups))
        asyncio.run(provision(settings))
        list(pool.map(start_once, services(settings, tracing)))


def stop(run_dir: Path, names: set[str] | None = None) -> None:
    """Stop the servers named (all by default): services first, then the backends."""
    for group in STOP_ORDER:
        chosen = [name for name in group if names is None or name in names]
        pids = [pid for name in chosen if (pid := recorded_pid(run_dir, name))]
        with ThreadPoolExecutor(max_workers=len(group)) as pool:
            list(pool.map(stop_pid, pids))
        for name in chosen:
            pidfile(run_dir, name).unlink(missing_ok=True)


def banner(settings: Settings, run_dir: Path, tokens: dict[str, str], tracing: bool = False) -> str:
    base = f"http://127.0.0.1:{settings.gateway_port}"
    traces = [f"Traces: Jaeger at http://127.0.0.1:{JAEGER_UI_PORT}/ (docs/tracing.md)", ""]
    return "\n".join(
        [
            "",
            f"MaaS is up: gateway {base}, meme :{settings.meme_port}, "
            f"ledger :{settings.ledger_port}",
            f"Logs: {run_dir / 'logs'}/   Stop: make down (or Ctrl-C under make run)",
            f"Follow them: tail -qF {run_dir / 'logs'}/{{gateway,ledger,meme}}.log | jq -c .",
            "",
            "A meme about food in Long Island City (demo starts with 100 tokens):",
            f"  curl -s '{base}/memes?lat=40.730610&lon=-73.935242&query=food' \\",
            f"    -H 'Authorization: Bearer {tokens['demo']}'",
            "",
            "demo has the ai role: with OPENAI_BASE_URL set it gets AI memes (2 tokens),",
            "else text ones. Paris, as a PNG:",
            f"  curl -s '{base}/v1/memes?lat=48.8566&lon=2.3522&query=croissants&format=png' \\",
            f"    -H 'Authorization: Bearer {tokens['demo']}' -o meme.png",
            "",
            "The demo account as the admin sees it:",
            f"  curl -s {base}/v1/accounts/demo -H 'Authorization: Bearer {tokens['demo-admin']}'",
            "",
            "The operators' console (dead letters, books, pipeline):",
            f"  http://127.0.0.1:{settings.ledger_port}/console/",
            "  sign in with this admin token (dev only, like the ones above):",
            f"  {tokens['demo-admin']}",
            "",
            *(traces if tracing else []),
        ]
    )


def status(run_dir: Path) -> Iterator[str]:
    for name in reversed([name for group in STOP_ORDER for name in group]):
        pid = recorded_pid(run_dir, name)
        yield f"{name:<11} {'running, pid ' + str(pid) if pid else 'stopped'}"


def say(text: str) -> None:
    """Print to stdout, or to stderr once stdout is gone (`make run | tee` and Ctrl-C
    kill tee first); never raise, so stopping the stack never depends on a reader."""
    for stream in (sys.stdout, sys.stderr):
        try:
            print(text, file=stream, flush=True)
            return
        except (BrokenPipeError, ValueError, OSError):
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def until_signalled() -> None:
    """Block until SIGINT or SIGTERM."""
    stopped = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()

    asyncio.run(wait())


def main() -> None:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__)
    parser.add_argument("command", choices=["up", "run", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="data, logs and pids")
    parser.add_argument(
        "--tracing", action="store_true", help="start Jaeger and send it the services' traces"
    )
    args = parser.parse_args()
    settings, run_dir = Settings(), args.run_dir.resolve()
    if args.command == "down":
        stop(run_dir)
        return
    if args.command == "status":
        print("\n".join(status(run_dir)))
        return
    started: list[Running] = []
    try:
        if args.tracing and not JAEGER.exists():
            parser.error(f"no Jaeger at {JAEGER}: run infra/local/install_jaeger.sh")
        up(settings, run_dir, started, args.tracing)
        say(banner(settings, run_dir, seed(settings), args.tracing))
    except BaseException:
        stop(run_dir, {running.server.name for running in started})
        raise
    if args.command == "run":
        try:
            until_signalled()
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
            say("stopping...")
            stop(run_dir)


if __name__ == "__main__":
    main()

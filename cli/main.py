"""`maas`: the operators' and developers' command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from cli import accounts, dlq, ledger, reconcile, tokens

Command = Callable[[argparse.Namespace], Awaitable[int] | int]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="maas", description="Memes as a Service: operator tools")
    commands = root.add_subparsers(dest="command", required=True)
    tokens.register(commands)
    accounts.register(commands)
    dlq.register(commands)
    reconcile.register(commands)
    ledger.register(commands)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run: Command = args.run
    result = run(args)
    code = asyncio.run(result) if asyncio.iscoroutine(result) else result
    sys.exit(int(code))  # type: ignore[arg-type]

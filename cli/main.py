"""`maas`: the operators' and developers' command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable

Command = Callable[[argparse.Namespace], Awaitable[int] | int]

# Each command's module is imported only when that command runs or shows its help: the
# store and queue clients behind them are most of a start (2 s of CPU), and `maas
# --help` needs none of them (0.1 s against 3 s).
COMMANDS: dict[str, tuple[str, str]] = {
    "token": ("cli.tokens", "print a JWT signed with the local secret"),
    "accounts": ("cli.accounts", "manage accounts"),
    "dlq": ("cli.dlq", "inspect and repair the dead-letter queue"),
    "reconcile": ("cli.reconcile", "compare Redis and MongoDB balances"),
    "ledger": ("cli.ledger", "read the ledger journal, settle accounts"),
    "regions": ("cli.regions", "close a region lost for good"),
}


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (given `argv`) only the command it names in full."""
    root = argparse.ArgumentParser(prog="maas", description="Memes as a Service: operator tools")
    commands = root.add_subparsers(dest="command", required=True)
    named = next((arg for arg in argv if not arg.startswith("-")), None) if argv else None
    for name, (module, helptext) in COMMANDS.items():
        command = commands.add_parser(name, help=helptext, description=helptext)
        if argv is None or name == named:
            importlib.import_module(module).register(command)
    return root


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv).parse_args(argv)
    run: Command = args.run
    result = run(args)
    code = asyncio.run(result) if asyncio.iscoroutine(result) else result
    sys.exit(int(code))  # type: ignore[arg-type]

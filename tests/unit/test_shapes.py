"""The Lua scripts spell the stored shapes as shared/accounting/shapes.py defines them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.accounting.shapes import OUTBOX_ENTRY, AccountField

LUA = Path(__file__).resolve().parents[2] / "shared" / "lua"
# The scripts whose KEYS[1] is an account hash (its name in the script, if it has one).
ACCOUNT_SCRIPTS = ["charge", "credit", "hydrate", "refund", "revoke", "settle"]
HASH_COMMANDS = ("HMGET", "HSET", "HINCRBY", "HGET")


def calls(source: str) -> list[list[str]]:
    """Every `redis.call(...)` as its top-level arguments, across line breaks."""
    found = []
    for start in (m.end() for m in re.finditer(r"redis\.call\(", source)):
        depth, args, current = 1, [], ""
        for ch in source[start:]:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    break
            if ch == "," and depth == 1:
                args.append(current.strip())
                current = ""
            else:
                current += ch
        found.append([*args, current.strip()])
    return found


def quoted(argument: str) -> str | None:
    match = re.fullmatch(r"'([a-z_]+)'", argument)
    return match.group(1) if match else None


def account_fields(script: str) -> set[str]:
    source = (LUA / f"{script}.lua").read_text()
    names = {"KEYS[1]", *re.findall(r"local (account_key)\b", source)}
    used = set()
    for args in calls(source):
        if args[0].strip("'") not in HASH_COMMANDS or args[1] not in names:
            continue
        fields = args[2:] if args[0] != "'HSET'" else args[2::2]
        if args[0] == "'HINCRBY'":
            fields = args[2:3]
        used |= {name for arg in fields if (name := quoted(arg))}
    return used


@pytest.mark.parametrize("script", ACCOUNT_SCRIPTS)
def test_each_script_uses_only_the_account_fields_defined_once(script: str) -> None:
    assert account_fields(script) <= set(AccountField), script


def test_every_account_field_is_used_by_some_script() -> None:
    used = set().union(*(account_fields(script) for script in ACCOUNT_SCRIPTS))
    assert used == set(AccountField)


@pytest.mark.parametrize("script", ["charge", "credit", "refund"])
def test_outbox_entries_are_written_letter_by_letter_in_the_defined_order(script: str) -> None:
    (xadd,) = [args for args in calls((LUA / f"{script}.lua").read_text()) if args[0] == "'XADD'"]
    letters = [arg.strip("'") for arg in xadd[3::2]]
    assert letters == list(OUTBOX_ENTRY), script

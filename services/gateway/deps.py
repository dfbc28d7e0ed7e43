"""What the gateway's handlers need, built once by the bootstrap and handed in."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.gateway.adapters.meme_client import MemeClient
from services.gateway.drain import Drain
from services.gateway.usecases.order_meme import MemeCharges
from services.gateway.usecases.slices import SliceBank
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import TokenBank
from shared.accounting.credits import CreditLog
from shared.auth import Authenticator
from shared.settings import Settings
from shared.stores import Redis


@dataclass(slots=True)
class Gateway:
    settings: Settings
    auth: Authenticator
    bank: TokenBank
    charges: MemeCharges  # the bank, or with a region its slices (`slices`)
    slices: SliceBank | None
    accounts: AccountStore
    credits: CreditLog
    memes: MemeClient
    redis: Redis
    drain: Drain


DEPS = web.AppKey("deps", Gateway)

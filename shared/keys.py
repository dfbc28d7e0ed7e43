"""Redis key layout. An account's keys and its outbox shard share one hash tag.

Every script touches the keys of one shard only, so all of them run unchanged on
Redis Cluster (one hash slot per script call).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    shards: int

    def shard_of(self, account: str) -> int:
        return zlib.crc32(account.encode()) % self.shards

    @staticmethod
    def tag(shard: int) -> str:
        return f"{{s{shard}}}"

    def account(self, account: str) -> str:
        return f"maas:{self.tag(self.shard_of(account))}:acct:{account}"

    def outbox(self, shard: int) -> str:
        return f"maas:{self.tag(shard)}:outbox"

    def outbox_of(self, account: str) -> str:
        return self.outbox(self.shard_of(account))

    def lease(self, shard: int) -> str:
        return f"maas:{self.tag(shard)}:lease"

    @staticmethod
    def reconcile_lease() -> str:
        """Held by the one ledger replica that runs the periodic reconciliation."""
        return "maas:{reconcile}:lease"

    @staticmethod
    def geocode(provider: str, geohash: str) -> str:
        """A remote geocoder's cached answer for one geohash cell."""
        return f"maas:geo:{provider}:{geohash}"

    def idempotency(self, account: str, key: str) -> str:
        return f"maas:{self.tag(self.shard_of(account))}:idem:{account}:{key}"

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

    @staticmethod
    def accounts_matching(pattern: str) -> str:
        """A SCAN pattern for the hashes of the accounts `pattern` (a glob) matches, in
        every shard; `account_in` reads an account back from such a key."""
        return f"maas:{{s*}}:acct:{pattern}"

    @staticmethod
    def account_in(key: str) -> str:
        return key.partition(":acct:")[2]

    def outbox(self, shard: int) -> str:
        return f"maas:{self.tag(shard)}:outbox"

    def outbox_of(self, account: str) -> str:
        return self.outbox(self.shard_of(account))

    def lease(self, shard: int) -> str:
        return f"maas:{self.tag(shard)}:lease"

    def hurry(self, shard: int) -> str:
        """A stream a caller adds to while it waits for the shard's newest event to reach
        SQS: the relay, blocked on it, wakes and sends the shard without lingering for a
        fuller batch. (A stream, so a blocked XREAD sees it; the name is not the string
        key `hurry` of earlier versions, so both can meet during a rolling deploy.)"""
        return f"maas:{self.tag(shard)}:hurry-stream"

    @staticmethod
    def reconcile_lease() -> str:
        """Held by the one ledger replica that runs the periodic reconciliation."""
        return "maas:{reconcile}:lease"

    @staticmethod
    def console_session(digest: str) -> str:
        """An operator's console session, by the SHA-256 of the id in its cookie."""
        return f"maas:{{console}}:session:{digest}"

    @staticmethod
    def books() -> str:
        """The last reconciliation report, as the console shows it."""
        return "maas:{console}:books"

    @staticmethod
    def dead_letter_collector_lease() -> str:
        """Held by the one ledger replica that moves the DLQ's messages into the index."""
        return "maas:{console}:dead-letter-collector-lease"

    @staticmethod
    def sampler_lease() -> str:
        """Held by the one ledger replica that samples the pipeline."""
        return "maas:{console}:sampler-lease"

    @staticmethod
    def samples(metric: str) -> str:
        """The last hour of one pipeline metric, scored by time."""
        return f"maas:{{console}}:samples:{metric}"

    @staticmethod
    def geocode(provider: str, geohash: str) -> str:
        """A remote geocoder's cached answer for one geohash cell."""
        return f"maas:geo:{provider}:{geohash}"

    def idempotency(self, account: str, key: str) -> str:
        """Length-prefixed, so no account and key pair can spell another pair's key."""
        return f"maas:{self.tag(self.shard_of(account))}:idem:{len(account)}:{account}:{key}"

    def pending(self, shard: int) -> str:
        """Charges not yet delivered nor refunded, by charge id (a hash)."""
        return f"maas:{self.tag(shard)}:pending"

    def deadlines(self, shard: int) -> str:
        """When each pending charge may be refunded by the sweeper (a sorted set, ms)."""
        return f"maas:{self.tag(shard)}:deadlines"

    def refund_decided(self, account: str, charge_id: str) -> str:
        """Marks a charge from an earlier epoch whose refund was decided once."""
        return f"maas:{self.tag(self.shard_of(account))}:refunded:{charge_id}"

    def credit_revoked(self, account: str, event_id: str) -> str:
        """Marks a repeated credit whose tokens were taken back from the live balance."""
        return f"maas:{self.tag(self.shard_of(account))}:revoked:{event_id}"

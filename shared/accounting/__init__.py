"""Token accounting, owned once for every service: events, prices, balances, credits.

The gateway charges and credits through `bank`, the ledger applies the same `events`
to MongoDB and settles through the same `bank`, and the CLI and the bench use them as
they are; no service imports another.
"""

"""The operators' console: dead letters, the books and the pipeline, in a browser.

Served by every ledger replica on its internal port under `/console/`; all its state
(sessions are signed tokens, the CSRF key, samples, the last books) lives in Redis and
MongoDB, so any replica answers the same.
"""

"""What the ledger does: apply messages exactly once, settle, reconcile, handle dead letters."""

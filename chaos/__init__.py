"""`make chaos`: load and seeded random faults on a private stack, then an independent check."""

"""The HTTP and Lambda glue shared by every function: resolver set-up, the contract's error shape,
admin auth, idempotency, observability and the per-cold-start service container.

This package may import Powertools; the domain package `timmy` may not.
"""

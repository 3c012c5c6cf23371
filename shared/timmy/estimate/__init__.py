"""The estimate use case: price a request and say how the free tier would serve it. Debits nothing."""

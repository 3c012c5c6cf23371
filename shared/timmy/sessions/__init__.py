"""Sessions (contract sections 3 and 5): a prepaid balance, synchronous requests held on it, top-ups, close."""

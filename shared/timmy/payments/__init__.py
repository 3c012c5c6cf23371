"""Lightning money: invoices in (booked once, from the backend's word), payouts out (exactly once),
and their first owner, donations to the pool."""

"""Lightning money: invoices in (booked once, from the backend's word), payouts out (exactly once),
and their first owner, donations to the pool."""

NOTE_CHARS_MAX = 280  # a donation's note; here, not in donations.py, so the HTTP body can say it without importing the payments

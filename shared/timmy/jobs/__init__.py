"""Jobs (contract sections 3, 5, 6): eval → decide → pay or go free → work → reconcile → refund."""

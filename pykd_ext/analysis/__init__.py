"""Pure functions from kernel views to typed findings."""

"""A trivial, timed Flower app for measuring per-round coordination overhead."""

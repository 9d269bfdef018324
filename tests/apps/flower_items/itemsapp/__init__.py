"""fedchain's issue-13 test app (a Flower app directory)."""

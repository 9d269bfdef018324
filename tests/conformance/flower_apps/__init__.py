"""Flower apps in the shapes of Flower's quickstarts, for the conformance suite."""

"""Hospitals fit one logistic regression on their breast-cancer records without pooling them."""

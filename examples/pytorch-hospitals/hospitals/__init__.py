"""Three hospitals train one CNN on scikit-learn's digits without pooling their images."""

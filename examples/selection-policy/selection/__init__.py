"""Four hospitals of different sizes train one MLP; the aggregator may take only some updates."""

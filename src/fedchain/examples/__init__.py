"""Built-in Flower apps, so ``fedchain-server`` and ``fedchain demo`` run without user code."""

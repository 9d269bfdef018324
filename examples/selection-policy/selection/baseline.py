"""The centrally trained baseline: the same MLP on the pooled training images, for as many
epochs as a hospital trains in the whole federated run. Run from the app directory:
``python -m selection.baseline``.
"""

from __future__ import annotations

import numpy as np

from selection.task import app_config, initial_params, pooled, test, train


def main() -> None:
    cfg = app_config({})
    seed = int(cfg["seed"])
    train_set, holdout = pooled(seed)
    epochs = int(cfg["num-server-rounds"]) * int(cfg["local-epochs"])
    params = initial_params(int(cfg["hidden"]), seed)
    train(params, train_set, {**cfg, "local-epochs": epochs}, np.random.default_rng(seed))
    loss, accuracy = test(params, holdout)
    print(f"central baseline: {epochs} epochs, hold-out loss {loss:.4f}, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()

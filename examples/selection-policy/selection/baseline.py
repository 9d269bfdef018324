"""The centrally trained baseline: the same MLP on the pooled training images, for as many
epochs as a hospital trains in the whole federated run. Run from the app directory:
``python -m selection.baseline``.
"""

from __future__ import annotations

import argparse

import numpy as np

from selection.task import app_config, initial_params, pooled, test, train


def main() -> None:
    parser = argparse.ArgumentParser(description="the centrally trained baseline")
    parser.add_argument("--model", help="a saved .npz model to evaluate on the hold-out set too")
    args = parser.parse_args()
    cfg = app_config({})
    seed = int(cfg["seed"])
    train_set, holdout = pooled(seed)
    epochs = int(cfg["num-server-rounds"]) * int(cfg["local-epochs"])
    params = initial_params(int(cfg["hidden"]), seed)
    train(params, train_set, {**cfg, "local-epochs": epochs}, np.random.default_rng(seed))
    loss, accuracy = test(params, holdout)
    print(f"central baseline: {epochs} epochs, hold-out loss {loss:.4f}, accuracy {accuracy:.4f}")
    if args.model:
        with np.load(args.model) as saved:
            final = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        loss, accuracy = test(final, holdout)
        print(f"{args.model}: hold-out loss {loss:.4f}, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()

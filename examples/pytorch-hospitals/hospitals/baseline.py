"""The centrally trained baseline: the same CNN on the pooled training images.

It trains for as many epochs as each hospital does in the whole federated run
(``num-server-rounds`` x ``local-epochs``) and prints the accuracy on the same hold-out set
the server evaluates on. Run from the app directory: ``python -m hospitals.baseline``; with
``--model final_model.pt`` (what the ServerApp saves) it also prints that model's accuracy.
"""

from __future__ import annotations

import argparse

import torch

from hospitals.task import app_config, new_model, pooled, test, train


def main() -> None:
    parser = argparse.ArgumentParser(description="the centrally trained baseline")
    parser.add_argument("--model", help="a saved state dict to evaluate on the hold-out set too")
    args = parser.parse_args()
    cfg = app_config({})
    seed = int(cfg["seed"])
    train_set, holdout = pooled(seed)
    model = new_model(seed)
    epochs = int(cfg["num-server-rounds"]) * int(cfg["local-epochs"])
    train(model, train_set, epochs=epochs, lr=float(cfg["lr"]), batch=int(cfg["batch-size"]),
          seed=seed)  # fmt: skip
    loss, accuracy = test(model, holdout)
    print(f"central baseline: {epochs} epochs, hold-out loss {loss:.4f}, accuracy {accuracy:.4f}")
    if args.model:
        model.load_state_dict(torch.load(args.model))
        loss, accuracy = test(model, holdout)
        print(f"{args.model}: hold-out loss {loss:.4f}, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()

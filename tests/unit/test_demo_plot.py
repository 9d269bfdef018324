"""The demo's plot shows what its headline prints: the final model's hold-out accuracy and the
centrally trained baseline, next to the per-round federated evaluation."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from fedchain.runtime.demo import figure

TABLE: list[dict[str, Any]] = [
    {"round": 1, "eval_acc": 0.5, "eval_loss": 1.2, "train_loss": 0.9},
    {"round": 2, "eval_acc": 0.9, "eval_loss": 0.5, "train_loss": 0.4},
    {"round": 3, "eval_acc": 0.948, "eval_loss": 0.3, "train_loss": 0.2},
]


def test_the_accuracy_panel_holds_the_headline_s_two_numbers() -> None:
    """It showed only the federated evaluation (0.948), not 0.969 vs 0.983."""
    fig = figure(TABLE, accuracy=0.969, baseline=0.983)
    try:
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        final = lines["final model, hold-out set (0.969)"]
        assert list(final.get_xdata()) == [3]
        assert list(final.get_ydata()) == [0.969]
        assert set(lines["central baseline, hold-out set (0.983)"].get_ydata()) == {0.983}
        assert list(lines["federated evaluation"].get_ydata()) == [0.5, 0.9, 0.948]
        legend = fig.axes[0].get_legend()
        assert legend is not None
        assert len(legend.get_texts()) == 3
    finally:
        plt.close(fig)


def test_no_evaluated_round_no_plot() -> None:
    assert figure([{"round": 1, "train_loss": 0.5}], accuracy=0.5, baseline=0.9) is None


def test_an_app_of_the_user_s_has_neither_number() -> None:
    fig = figure(TABLE, accuracy=None, baseline=None)
    try:
        assert [line.get_label() for line in fig.axes[0].get_lines()] == ["federated evaluation"]
    finally:
        plt.close(fig)

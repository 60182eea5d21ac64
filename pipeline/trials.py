"""The sweep's trials (``pipeline/sweep.py``): what one run varies, and the two grids run so far."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trial:
    pooling: str = "cls"
    order: str = "random"
    lr: float = 8e-5
    epochs: int = 1
    batch_size: int = 32
    split_seed: int = 13
    student_lr: float = 1e-4
    student_epochs: int = 1
    seed: int = 13
    """Seed of the head's initialisation, dropout and batch order."""
    labels: str = "all"
    """Teacher's training labels: ``all``; ``weighted`` by annotator confidence; ``confident``
    keeps the training examples whose confidence is at least 0.7 (test and validation untouched)."""
    label_smoothing: float = 0.0
    head_lr_mult: float = 1.0

    @property
    def label(self) -> str:
        return (
            f"{self.pooling:4} {self.order:8} lr={self.lr:.0e} ep={self.epochs} "
            f"bs={self.batch_size} split={self.split_seed} seed={self.seed}"
            + (f" labels={self.labels}" if self.labels != "all" else "")
            + (f" ls={self.label_smoothing}" if self.label_smoothing else "")
            + (f" head_lr_x{self.head_lr_mult:g}" if self.head_lr_mult != 1.0 else "")
        )


def default_grid() -> list[Trial]:
    """Priority order: the main grid on the build's split, then split variance, then extras."""
    grid = [
        Trial(pooling=p, order=o, lr=lr, epochs=ep)
        for ep in (1, 2)
        for lr in (8e-5, 5e-5, 1.2e-4)
        for p in ("cls", "mean")
        for o in ("random", "bucketed")
    ]
    for seed in (1, 2, 3, 4):
        grid += [Trial(split_seed=seed), Trial(pooling="mean", order="bucketed", split_seed=seed)]
    grid += [
        Trial(pooling=p, order="bucketed", lr=lr, batch_size=bs)
        for p in ("cls", "mean")
        for lr, bs in ((5e-5, 16), (2e-4, 32))
    ]
    return grid


def second_grid() -> list[Trial]:
    """After the first grid: init-seed spread, confidence-aware labels, smoothing, head lr."""
    grid = [Trial(pooling=p, seed=s) for s in (1, 2, 3) for p in ("mean", "cls")]
    grid += [
        Trial(pooling=p, order="bucketed", labels=lab)
        for lab in ("weighted", "confident")
        for p in ("mean", "cls")
    ]
    grid += [Trial(pooling="mean", labels=lab) for lab in ("weighted", "confident")]
    grid += [Trial(pooling="mean", order="bucketed", seed=s) for s in (1, 2, 3)]
    grid += [Trial(pooling=p, order="bucketed", label_smoothing=0.1) for p in ("mean", "cls")]
    grid += [Trial(pooling=p, order="bucketed", head_lr_mult=10.0) for p in ("mean", "cls")]
    for seed in (3, 4):
        grid += [Trial(split_seed=seed), Trial(pooling="mean", order="bucketed", split_seed=seed)]
    grid += [Trial(pooling="mean", labels="confident", seed=s) for s in (1, 2)]
    return grid

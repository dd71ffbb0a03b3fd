r"""The training loop of posterior estimators: :func:`fit`."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from .._validation import check_count, check_number, describe
from .checkpoint import read_checkpoint, write_checkpoint
from .npe import NPE
from .sources import DatasetSource, TensorSource, prepare

__all__ = ["fit"]

SCHEDULES = ("plateau", "cosine", None)


def fit(
    estimator: NPE,
    data: object,
    *,
    epochs: int = 1000,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str | None = "plateau",
    clip_norm: float = 5.0,
    validation: float = 0.1,
    patience: int = 20,
    reductions: int | None = 5,
    max_nonfinite: int = 10,
    seed: int = 0,
    device: str | torch.device | None = None,
    in_memory: bool | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    r"""Trains a posterior estimator on pairs :math:`(\theta, x)` by maximum likelihood.

    The loss is :math:`-\frac{1}{N} \sum_i \log q(\theta_i \mid x_i)` on batches of the
    training split, minimised by AdamW with gradient clipping and a learning-rate schedule.
    After each epoch the loss on the validation split decides early stopping: training
    stops after ``patience`` epochs without improvement, or on a plateau after the
    learning rate has been halved ``reductions`` times, and the weights of the best epoch
    are restored. The standardisation of :math:`\theta` (in the prior's unconstrained
    space) and of :math:`x` is computed from the training split before the first epoch.

    A batch whose loss or gradient is not finite is skipped and counted;
    ``max_nonfinite`` such batches in a row stop the training with the best weights kept.
    The split and the order of the batches derive only from ``(seed, epoch)``: the same
    initial weights, data and settings give the same result, and a training resumed from
    its checkpoint the same result as one never interrupted.

    Arguments:
        estimator: The estimator, e.g. :class:`~sbikit.inference.NPE`, trained in place.
        data: A pair of tensors ``(theta, x)`` with shapes :math:`(N, D)` and
            :math:`(N, *X)`, the path of a file written by :func:`sbikit.data.simulate`,
            or a :class:`~sbikit.data.SimulationDataset` (which keeps its batch size).
        epochs: The maximum number of epochs.
        batch_size: The number of pairs per batch (tensors and paths).
        learning_rate: The initial learning rate of AdamW.
        weight_decay: The weight decay of AdamW.
        schedule: ``"plateau"`` halves the learning rate after ``patience // 4`` epochs
            without improvement, ``"cosine"`` anneals it to zero over ``epochs``, ``None``
            keeps it constant.
        clip_norm: The maximum norm of the gradient.
        validation: The fraction of the data held out for validation, in (0, 1).
        patience: The number of epochs without improvement before stopping.
        reductions: With ``schedule="plateau"``, the number of times the learning rate is
            halved: the next plateau stops the training (``None``: no limit, only
            ``patience`` stops it). By then the learning rate is
            :math:`2^{-\text{reductions}}` of its initial value and further epochs change
            the validation loss by little.
        max_nonfinite: The number of consecutive non-finite batches that stops training.
        seed: The seed of the split and of the batches' order.
        device: Where to train (``"cpu"``, ``"cuda"``, ...); the estimator is moved there.
            Default: where the estimator is.
        in_memory: Whether a file is read into memory (default: if it holds at most 1 GiB)
            or streamed.
        checkpoint: A file where the state of the training is written after every epoch.
        resume: Whether an existing ``checkpoint`` is resumed (otherwise it is replaced).
        progress: Whether to show a progress bar.

    Returns:
        The history, also stored as ``estimator.history``: per epoch ``epoch``,
        ``train_loss``, ``validation_loss``, ``learning_rate``, ``time`` (seconds) and
        ``skipped`` (non-finite batches); and ``best_epoch``, ``best_validation_loss``,
        ``stopped`` (``"early_stopping"``, ``"plateau"`` after the last reduction,
        ``"epochs"`` or ``"non-finite"``),
        ``train_rows``, ``validation_rows`` and ``settings``.

    Example:
        >>> import sbikit
        >>> from sbikit.inference import NPE
        >>> theta = torch.randn(1000, 2)
        >>> x = theta + 0.1 * torch.randn(1000, 2)
        >>> posterior = NPE(2, 2, transforms=1, hidden_features=(16, 16))
        >>> history = sbikit.fit(posterior, (theta, x), epochs=3, progress=False)
        >>> history["epoch"], history["stopped"]
        ([1, 2, 3], 'epochs')
    """

    settings = check_settings(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        schedule=schedule,
        clip_norm=clip_norm,
        validation=validation,
        patience=patience,
        reductions=reductions,
        max_nonfinite=max_nonfinite,
        seed=seed,
    )
    if not isinstance(estimator, NPE):
        raise TypeError(
            f"fit expects an estimator such as NPE, but received {describe(estimator)}."
        )
    if device is not None:
        estimator.to(device)
    reference = estimator.theta_loc
    train, valid = prepare(
        data,
        estimator.theta_dim,
        estimator.x_shape,
        batch_size=batch_size,
        validation=validation,
        seed=seed,
        in_memory=in_memory,
        device=reference.device,
        dtype=reference.dtype,
    )
    settings |= {"train_rows": train.rows, "validation_rows": valid.rows}
    return Training(estimator, train, valid, settings, checkpoint, resume, progress).run()


def check_settings(**settings: object) -> dict:
    r"""Returns the settings of :func:`fit` as a JSON-serialisable dict, or raises."""

    for name in ("epochs", "batch_size", "patience", "max_nonfinite"):
        check_count(settings[name], name, "fit")
    check_count(settings["seed"], "seed", "fit", minimum=0)
    if settings["reductions"] is not None:
        check_count(settings["reductions"], "reductions", "fit", minimum=0)
    check_number(settings["learning_rate"], "learning_rate", "fit", 0.0)
    check_number(settings["clip_norm"], "clip_norm", "fit", 0.0)
    check_number(settings["validation"], "validation", "fit", 0.0, 1.0)
    if check_number(settings["weight_decay"], "weight_decay", "fit", -1.0) < 0:
        raise ValueError(f"fit expects weight_decay >= 0, but received {settings['weight_decay']}.")
    if settings["schedule"] not in SCHEDULES:
        raise ValueError(
            f"fit expects schedule to be one of {SCHEDULES}, but received {settings['schedule']!r}."
        )
    return settings


class Training:
    r"""The state of one run of :func:`fit`: optimiser, schedule, best weights, history."""

    def __init__(
        self,
        estimator: NPE,
        train: TensorSource | DatasetSource,
        valid: TensorSource | DatasetSource,
        settings: dict,
        checkpoint: str | Path | None,
        resume: bool,
        progress: bool,
    ):
        self.estimator, self.train, self.valid = estimator, train, valid
        self.settings, self.checkpoint, self.progress = settings, checkpoint, progress
        self.optimizer = adamw(
            list(estimator.parameters()), settings["learning_rate"], settings["weight_decay"]
        )
        if settings["schedule"] == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=0.5, patience=max(1, settings["patience"] // 4)
            )
        elif settings["schedule"] == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, settings["epochs"]
            )
        else:
            self.scheduler = None
        self.history: dict = {
            "epoch": [],
            "train_loss": [],
            "validation_loss": [],
            "learning_rate": [],
            "time": [],
            "skipped": [],
            "best_epoch": 0,
            "best_validation_loss": math.inf,
            "stopped": None,
            "train_rows": settings["train_rows"],
            "validation_rows": settings["validation_rows"],
            "settings": {k: v for k, v in settings.items() if not k.endswith("_rows")},
        }
        self.bad_epochs = 0
        state = None
        if checkpoint is not None and resume and Path(checkpoint).exists():
            state = read_checkpoint(checkpoint, estimator, self.compatibility())
        if state is None:
            standardize(estimator, train)
            self.best = clone_state(estimator)
        else:
            self.restore(state)

    def compatibility(self) -> dict:
        r"""What a checkpoint must share with this run to be resumed by it."""

        settings = {k: v for k, v in self.settings.items() if k != "epochs"}
        return {"settings": settings, "config": self.estimator.config}

    def restore(self, state: dict) -> None:
        r"""Restores the training from a checkpoint's state."""

        self.estimator.load_state_dict(state["model"])
        self.best = state["best_model"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]
        self.history["settings"]["epochs"] = self.settings["epochs"]
        if self.history["stopped"] == "epochs":  # a longer run continues it
            self.history["stopped"] = None
        self.bad_epochs = state["bad_epochs"]

    def run(self) -> dict:
        r"""Runs the remaining epochs and returns the history."""

        history, estimator = self.history, self.estimator
        if history["stopped"] is not None:  # finished (restore reopens an "epochs" stop)
            return self.finish()
        reductions = self.settings["reductions"] if self.settings["schedule"] == "plateau" else None
        start = len(history["epoch"])
        bar = tqdm(
            range(start, self.settings["epochs"]),
            desc="fit",
            unit="epoch",
            initial=start,
            total=self.settings["epochs"],
            disable=not self.progress,
        )
        for epoch in bar:
            started = time.perf_counter()
            estimator.train()
            train_loss, skipped, failed = self.train_epoch(epoch)
            estimator.eval()
            with torch.no_grad():
                valid_loss = mean_loss(estimator, self.valid.batches(0))[0]
            history["epoch"].append(epoch + 1)
            history["train_loss"].append(train_loss)
            history["validation_loss"].append(valid_loss)
            history["learning_rate"].append(self.optimizer.param_groups[0]["lr"])
            history["skipped"].append(skipped)
            self.step_schedule(valid_loss)
            if valid_loss < history["best_validation_loss"]:
                history["best_validation_loss"], history["best_epoch"] = valid_loss, epoch + 1
                self.best, self.bad_epochs = clone_state(estimator), 0
            else:
                self.bad_epochs += 1
            if failed:
                history["stopped"] = "non-finite"
            elif self.bad_epochs >= self.settings["patience"]:
                history["stopped"] = "early_stopping"
            elif reductions is not None and self.halvings() > reductions:
                history["stopped"] = "plateau"
            elif epoch + 1 == self.settings["epochs"]:
                history["stopped"] = "epochs"
            history["time"].append(time.perf_counter() - started)
            bar.set_postfix(train=f"{train_loss:.4f}", valid=f"{valid_loss:.4f}")
            if self.checkpoint is not None:
                self.write()
            if history["stopped"] is not None:
                break
        bar.close()
        return self.finish()

    def train_epoch(self, epoch: int) -> tuple[float, int, bool]:
        r"""Trains one epoch; returns the mean loss, the number of skipped batches and
        whether ``max_nonfinite`` consecutive batches failed."""

        total, rows, skipped, consecutive = 0.0, 0, 0, 0
        parameters = [p for p in self.estimator.parameters() if p.requires_grad]
        for theta, x in self.train.batches(epoch):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.estimator.loss(theta, x)
            finite = bool(torch.isfinite(loss))
            if finite:
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(
                    parameters, self.settings["clip_norm"], foreach=True
                )
                finite = bool(torch.isfinite(norm))
            if not finite:
                skipped, consecutive = skipped + 1, consecutive + 1
                if consecutive >= self.settings["max_nonfinite"]:
                    return total / max(rows, 1), skipped, True
                continue
            consecutive = 0
            self.optimizer.step()
            total, rows = total + loss.item() * len(theta), rows + len(theta)
        return (total / rows if rows else math.nan), skipped, False

    def step_schedule(self, valid_loss: float) -> None:
        r"""Advances the learning-rate schedule by one epoch."""

        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(valid_loss)
        elif self.scheduler is not None:
            self.scheduler.step()

    def halvings(self) -> int:
        r"""The number of times the plateau schedule has halved the learning rate."""

        ratio = self.settings["learning_rate"] / self.optimizer.param_groups[0]["lr"]
        return round(math.log2(ratio))

    def write(self) -> None:
        r"""Writes the checkpoint of the training."""

        write_checkpoint(
            self.checkpoint,
            {
                **self.compatibility(),
                "model": self.estimator.state_dict(),
                "best_model": self.best,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "history": self.history,
                "bad_epochs": self.bad_epochs,
            },
        )

    def finish(self) -> dict:
        r"""Restores the best weights, warns about skipped batches and returns the history."""

        history = self.history
        self.estimator.load_state_dict(self.best)
        self.estimator.eval()
        skipped = sum(history["skipped"])
        if history["stopped"] == "non-finite":
            warnings.warn(
                f"fit stopped after {self.settings['max_nonfinite']} consecutive batches with "
                f"a non-finite loss or gradient; the weights of epoch {history['best_epoch']} "
                "are kept. Check the data for NaN or inf values, or lower learning_rate.",
                RuntimeWarning,
                stacklevel=3,
            )
        elif skipped:
            warnings.warn(
                f"fit skipped {skipped} batch(es) whose loss or gradient was not finite. If the "
                "data hold NaN or inf values, remove those rows before training.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.estimator.history = history
        return history


FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")
r"""The device types whose parameters AdamW updates with its fused kernel."""


def adamw(parameters: list[Tensor], learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    r"""Returns AdamW with its fused kernel where the parameters' device has one (one kernel
    for the whole update: on CPU a third of the time of the multi-tensor update), else with
    the multi-tensor update; the algorithm is the same."""

    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in parameters)
    kernel = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay, **kernel)


def mean_loss(estimator: NPE, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[float, int]:
    r"""Returns the mean loss over the finite batches of ``batches`` (:math:`\infty` if none)
    and the number of non-finite ones."""

    total, rows, skipped = 0.0, 0, 0
    for theta, x in batches:
        loss = estimator.loss(theta, x).item()
        if math.isfinite(loss):
            total, rows = total + loss * len(theta), rows + len(theta)
        else:
            skipped += 1
    return (total / rows if rows else math.inf), skipped


def standardize(estimator: NPE, train: TensorSource | DatasetSource) -> None:
    r"""Sets the estimator's standardisation from the finite rows of the training split."""

    sums: list[Tensor] | None = None
    count = 0
    with torch.no_grad():
        for theta, x in train.batches(0):
            u = estimator.unconstrain_theta(theta).double()
            x = x.double()
            finite = torch.isfinite(u).all(-1) & torch.isfinite(x.flatten(1)).all(-1)
            u, x = u[finite], x[finite]
            moments = [u.sum(0), (u**2).sum(0), x.sum(0), (x**2).sum(0)]
            sums = moments if sums is None else [a + b for a, b in zip(sums, moments, strict=True)]
            count += len(u)
    if count < 2:
        raise ValueError(
            f"fit found {count} finite pair(s) in the training split: the standardisation "
            "needs at least 2. Remove the rows with NaN or inf values, or simulate more."
        )
    values = (*moments_of(sums[0], sums[1], count), *moments_of(sums[2], sums[3], count))
    estimator.set_standardization(*(t.to(estimator.theta_loc.dtype) for t in values))


def moments_of(total: Tensor, squares: Tensor, count: int) -> tuple[Tensor, Tensor]:
    r"""Returns the mean and the standard deviation (1 where it is zero) from sums."""

    loc = total / count
    scale = ((squares / count - loc**2).clamp(min=0) * count / (count - 1)).sqrt()
    return loc, torch.where(scale > 1e-12 * (1 + loc.abs()), scale, torch.ones_like(scale))


def clone_state(estimator: NPE) -> dict[str, Tensor]:
    r"""Returns a copy of the estimator's state dict."""

    return copy.deepcopy(estimator.state_dict())

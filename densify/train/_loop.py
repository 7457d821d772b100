"""One training run: a recipe, a seed, a fixed budget of optimiser steps; checkpointed and resumable.

Fairness between recipes: every run of a seed sees the same batches in the same order (the sampler depends only on
(seed, step)), the same initial weights, and the same number of optimiser steps; only the augmentation differs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from densify._hash import digest
from densify._io import write_bytes_atomic
from densify.data import DataSplits
from densify.errors import TrainError

Progress = Callable[[int, int], None]  # (step, total)


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every run of a comparison (they are part of the results' fingerprint).

    steps: optimiser steps per run (equal for every recipe). batch: images per step. lr: peak learning rate of the
    one-cycle schedule (AdamW). weight_decay, label_smoothing: regularisation. model: see ``build_model``.
    workers: DataLoader workers (0 = augment in the training process). checkpoint_every: steps between checkpoints.
    log_every: steps per point of the loss curve.
    """

    steps: int = 2000
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    model: str = "small-cnn"
    workers: int = 0
    checkpoint_every: int = 500
    log_every: int = 50

    def check(self) -> TrainConfig:
        for key in ("steps", "batch", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise TrainError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if self.workers < 0:
            raise TrainError(f"workers must be >= 0, got {self.workers}")
        if not 0 <= self.label_smoothing < 1:
            raise TrainError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.lr > 0:
            raise TrainError(f"lr must be positive, got {self.lr}")
        return self


@dataclass(frozen=True)
class RunResult:
    """The outcome of one (recipe, seed) run."""

    recipe: str
    seed: int
    steps: int
    heldout_accuracy: float
    per_class_accuracy: list[float | None]
    final_train_loss: float  # mean loss of the last 10% of steps, on augmented batches
    clean_train_loss: float  # the final model's loss on (up to 2,000) clean training images
    loss_curve: list[float] = field(default_factory=list)  # mean loss per log_every steps
    seconds: float = 0.0
    images_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_indices(n: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Indices of the training images of ``step``: epoch-wise seeded permutations, the last partial batch dropped.

    A pure function of (n, batch, seed, step), so runs are resumable and every recipe sees the same order.
    """
    per_epoch = max(1, n // batch)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return np.sort(order[position * batch : (position + 1) * batch])


def _epoch_of(n: int, batch: int, step: int) -> int:
    return step // max(1, n // batch)


def _checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def evaluate(
    model, images: np.ndarray, labels: np.ndarray, n_classes: int, batch: int = 512
) -> tuple[float, list[float | None], float]:
    """(top-1 accuracy, per-class accuracy (None for a class without images), mean cross-entropy) of ``model`` on
    uint8 images."""
    import torch

    from densify._torch import device, to_tensor

    dev = device()
    model.eval()
    correct, losses = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = to_tensor(images[start : start + batch], dev)
            y = torch.from_numpy(np.array(labels[start : start + batch], dtype=np.int64)).to(dev)
            logits = model(x)
            losses.append(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item())
            correct.append((logits.argmax(1) == y).cpu().numpy())
    hit = np.concatenate(correct)
    per_class = [float(hit[labels == c].mean()) if (labels == c).any() else None for c in range(n_classes)]
    return float(hit.mean()), per_class, float(sum(losses) / len(images))


def train_run(
    data: DataSplits,
    recipe: str,
    seed: int,
    config: TrainConfig,
    *,
    strength: float = 1.0,
    checkpoint: str | Path | None = None,
    progress: Progress | None = None,
    init: str | Path | None = None,
    save_weights: str | Path | None = None,
) -> RunResult:
    """Train ``config.model`` on ``data.train`` augmented by ``recipe`` for ``config.steps`` steps; evaluate on
    ``data.heldout``.

    ``init``: a weights file (``save_weights`` of an earlier run) to start from instead of the seed's fresh
    initialisation: a fine-tune (:func:`densify.train.finetune_recipes`). ``save_weights``: where to write the
    final weights (atomically, by rank 0).

    With ``checkpoint``, the state is saved there atomically every ``config.checkpoint_every`` steps and a run
    finding a checkpoint continues from it, ending exactly where an uninterrupted run ends. Under ``torchrun``
    with several processes each step's batch is split across ranks (see ``densify._dist``); bf16 autocast
    on GPU.

    Raises:
        TrainError: a NaN or infinite loss (with the step), or a checkpoint from other settings.
    """
    import torch
    from torch.utils.data import DataLoader

    from densify._dist import init_from_env, mean_over_ranks
    from densify._torch import device, memory_format, train_threads
    from densify.loader import DensifiedDataset, load_recipe
    from densify.train.models import build_model

    config.check()
    rank, world = init_from_env()
    torch.set_num_threads(train_threads())
    layout = memory_format() if world == 1 else torch.contiguous_format
    dev = (
        device()
        if world == 1 or not torch.cuda.is_available()
        else torch.device("cuda", torch.cuda.current_device())
    )
    train, n_classes = data.train, len(data.classes)
    if len(train) < config.batch:
        raise TrainError(f"batch {config.batch} is larger than the {len(train)} training images")
    if config.batch % world:
        raise TrainError(f"batch {config.batch} must be divisible by the {world} distributed processes")
    augmenter = load_recipe(recipe, strength=strength, seed=seed, output="tensor")
    dataset = DensifiedDataset(train, augmenter, views=1, output="tensor")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(config.model, train.channels, n_classes).to(dev, memory_format=layout)
    identity = {"recipe": augmenter.recipe.name, "seed": seed, "strength": strength, "config": asdict(config)}
    if init is not None:
        blob = _read_weights(Path(init))
        net.load_state_dict(torch.load(io.BytesIO(blob), map_location=dev, weights_only=True))
        identity["init"] = digest(np.frombuffer(blob, np.uint8))
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    path = Path(checkpoint) if checkpoint is not None else None
    step, losses, seconds = _restore(path, identity, dev, net, optimiser, schedule)

    start = time.perf_counter() - seconds
    model.train()
    while step < config.steps:
        epoch = _epoch_of(len(train), config.batch, step)
        per_epoch = max(1, len(train) // config.batch)
        last = min(config.steps, (epoch + 1) * per_epoch)
        dataset.set_epoch(epoch)
        # Rank r takes every world-th image of each step's batch: together the ranks see exactly one batch.
        sampler = [
            batch_indices(len(train), config.batch, seed, s)[rank::world].tolist() for s in range(step, last)
        ]
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers)
        for x, y in loader:
            x = x.to(dev, non_blocking=True, memory_format=layout)
            y = y.to(dev, non_blocking=True)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = loss_fn(model(x), y)
            logged = mean_over_ranks(loss, world)
            if not torch.isfinite(logged):
                raise TrainError(
                    f"recipe '{augmenter.recipe.name}', seed {seed}: training loss became {logged.item()} at step "
                    f"{step + 1} (lr {config.lr}); lower the learning rate"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(logged.item()))
            step += 1
            if progress:
                progress(step, config.steps)
            if path is not None and (step % config.checkpoint_every == 0) and step < config.steps:
                state = {"identity": identity, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                         "schedule": schedule.state_dict(), "step": step, "losses": losses,
                         "seconds": time.perf_counter() - start}  # fmt: skip
                _checkpoint(path, state)
    seconds = time.perf_counter() - start
    if path is not None and rank == 0:
        path.unlink(missing_ok=True)
    if save_weights is not None and rank == 0:
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        write_bytes_atomic(Path(save_weights), buffer.getvalue())
    return _result(net, data, augmenter.recipe.name, seed, config, losses, seconds)


def _read_weights(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TrainError(f"{path}: cannot read the initial weights ({e.strerror or e})") from None


def _restore(
    path: Path | None, identity: dict, dev, net, optimiser, schedule
) -> tuple[int, list[float], float]:
    """(step, losses, seconds) of a run continued from its checkpoint at ``path``, or of a fresh run."""
    import torch

    if path is None or not path.is_file():
        return 0, [], 0.0
    state = torch.load(path, map_location=dev, weights_only=False)
    if state.get("identity") != identity:
        raise TrainError(
            f"{path}: checkpoint of a different run ({state.get('identity')}); delete it, or write to another folder"
        )
    net.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    schedule.load_state_dict(state["schedule"])
    return state["step"], list(state["losses"]), state["seconds"]


def _result(
    net, data: DataSplits, recipe: str, seed: int, config: TrainConfig, losses, seconds: float
) -> RunResult:
    """Evaluate a trained network on the held-out split (and up to 2,000 clean training images)."""
    train, n_classes = data.train, len(data.classes)
    accuracy, per_class, _ = evaluate(net, data.heldout.images, data.heldout.labels, n_classes)
    clean = np.random.default_rng(seed).permutation(len(train))[:2000]
    _, _, clean_loss = evaluate(net, train.images[np.sort(clean)], train.labels[np.sort(clean)], n_classes)
    tail = losses[-max(1, len(losses) // 10) :]
    curve = [
        float(np.mean(losses[i : i + config.log_every])) for i in range(0, len(losses), config.log_every)
    ]
    return RunResult(
        recipe=recipe,
        seed=seed,
        steps=config.steps,
        heldout_accuracy=accuracy,
        per_class_accuracy=per_class,
        final_train_loss=float(np.mean(tail)),
        clean_train_loss=clean_loss,
        loss_curve=curve,
        seconds=seconds,
        images_per_second=config.steps * config.batch / max(seconds, 1e-9),
    )

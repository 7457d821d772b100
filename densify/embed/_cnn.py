"""``random-cnn`` (fixed random convolutional features) and ``reference`` (a small CNN trained on the clean split)."""

from __future__ import annotations

import time

import numpy as np

from densify._hash import digest
from densify._torch import batches, device, stack_rows, to_tensor, torch_threads
from densify.data import ImageSet
from densify.errors import EncoderError


def _l2(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class RandomCNNEncoder:
    """Fixed random convolutional features (no training): three seeded conv + ReLU stages, 2×2 average pooling,
    L2-normalised (512-d). A data-independent baseline encoder."""

    def __init__(self, seed: int = 0, width: int = 32) -> None:
        self.seed, self.width = int(seed), int(width)
        self.name = "random-cnn"
        self._net = None

    def fit(self, train: ImageSet) -> RandomCNNEncoder:
        import torch
        from torch import nn

        w = self.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = nn.Sequential(
                nn.Conv2d(train.channels, w, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(w, 2 * w, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(2 * w, 4 * w, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
            )
        self._net = net.eval().to(device())
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        import torch

        if self._net is None:
            raise EncoderError("random-cnn: call fit(train) before encode()")
        torch.set_num_threads(torch_threads())
        dev = device()
        with torch.inference_mode():
            return stack_rows(
                len(images), (_l2(self._net(to_tensor(b, dev))).cpu().numpy() for b in batches(images))
            )

    def fingerprint(self) -> str:
        return digest(self.name, self.seed, self.width)


class ReferenceEncoder:
    """A small CNN trained on the clean training split only; embeddings are its penultimate features, L2-normalised.

    Training is a fixed budget of ``steps`` Adam steps (batch 128, one-cycle learning rate, label smoothing 0.1),
    seeded, on the CPU by default; on fashion-mini (10,000 images) it takes well under a minute on 2 cores.
    The head's predictions give the label-consistency metric.
    """

    def __init__(
        self, seed: int = 0, steps: int = 800, width: int = 16, embed_dim: int = 128, batch: int = 128
    ) -> None:
        #: called as ``on_step(done, total)`` every 20 training steps (progress; not part of the fingerprint)
        self.on_step = None
        self.seed, self.steps, self.width, self.embed_dim, self.batch = (
            int(seed),
            int(steps),
            width,
            embed_dim,
            batch,
        )
        self.name = "reference"
        self.wants_views = False  # True for reference+views
        self._features = self._head = None
        self._data_digest = ""
        self.train_seconds = 0.0
        self._views: list = []  # augmenters whose views join the training batches (reference+views)
        self._views_digest = ""

    @property
    def views_seen(self) -> bool:
        return bool(self._views)

    def see_views(self, augmenters, descriptor: str) -> ReferenceEncoder:
        """Train on the clean split *plus* views of these recipes (the ``reference+views`` encoder): each image of
        a batch is, with equal probability, clean or a view of one of the recipes, so no audited recipe is unseen
        by the encoder and none is favoured. The views come from epochs >= 1, never the epoch-0 views that the
        coverage metrics measure. ``descriptor`` identifies the recipes (it enters the fingerprint)."""
        self._views = list(augmenters)
        self._views_digest = digest(descriptor)
        self.name = "reference+views"
        self.wants_views = True
        return self

    def _build(self, channels: int, n_classes: int):
        import torch

        from densify.train.models import small_cnn

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._features, self._head = small_cnn(channels, n_classes, self.width, self.embed_dim)
        dev = device()
        self._features.to(dev)
        self._head.to(dev)

    def fit(self, train: ImageSet) -> ReferenceEncoder:
        import torch
        from torch import nn

        torch.set_num_threads(torch_threads())
        self._data_digest = digest(*train.fingerprint_parts())
        self._build(train.channels, len(train.classes))
        dev = device()
        params = [*self._features.parameters(), *self._head.parameters()]
        optimiser = torch.optim.AdamW(params, lr=3e-3, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=self.steps)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        rng = np.random.default_rng(self.seed)
        images, labels = train.images, train.labels
        order, cursor = rng.permutation(len(images)), 0
        self._features.train()
        self._head.train()
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for step in range(self.steps):
                if cursor + self.batch > len(order):
                    order, cursor = rng.permutation(len(images)), 0
                idx = np.sort(order[cursor : cursor + self.batch])
                cursor += self.batch
                batch = images[idx]
                if self._views:
                    batch = batch.copy()
                    pick = rng.integers(0, len(self._views) + 1, size=len(idx))  # 0: clean
                    for j in np.flatnonzero(pick):
                        batch[j] = self._views[pick[j] - 1].view_of(train, int(idx[j]), epoch=1 + step)
                x = to_tensor(batch, dev)
                y = torch.from_numpy(labels[idx]).to(dev)
                loss = loss_fn(self._head(self._features(x)), y)
                if not torch.isfinite(loss):
                    raise EncoderError("reference: training loss became NaN or inf")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                if self.on_step is not None and ((step + 1) % 20 == 0 or step + 1 == self.steps):
                    self.on_step(step + 1, self.steps)
        self.train_seconds = time.perf_counter() - start
        self._features.eval()
        self._head.eval()
        return self

    def encode_and_predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (N, embed_dim) L2-normalised embeddings, int64 (N,) predicted labels)."""
        import torch

        if self._features is None:
            raise EncoderError("reference: call fit(train) before encode()")
        torch.set_num_threads(torch_threads())
        dev = device()
        predictions = np.empty(len(images), np.int64)

        def embedded():
            start = 0
            for b in batches(images):
                feats = self._features(to_tensor(b, dev))
                predictions[start : start + len(b)] = self._head(feats).argmax(dim=1).cpu().numpy()
                start += len(b)
                yield _l2(feats).cpu().numpy()

        with torch.inference_mode():
            return stack_rows(len(images), embedded()), predictions

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.encode_and_predict(images)[0]

    def fingerprint(self) -> str:
        parts = [self.name, self.seed, self.steps, self.width, self.embed_dim, self.batch, self._data_digest]
        if self._views:
            parts.append(self._views_digest)
        return digest(*parts)

    def state(self) -> dict[str, np.ndarray]:
        """The trained weights as numpy arrays (to cache a trained encoder)."""
        out = {f"features.{k}": v.cpu().numpy() for k, v in self._features.state_dict().items()}
        out.update({f"head.{k}": v.cpu().numpy() for k, v in self._head.state_dict().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray], train: ImageSet) -> ReferenceEncoder:
        """Restore weights saved by :meth:`state` for the same training split (no training)."""
        import torch

        self._data_digest = digest(*train.fingerprint_parts())
        self._build(train.channels, len(train.classes))
        for prefix, module in (("features.", self._features), ("head.", self._head)):
            module.load_state_dict(
                {k[len(prefix) :]: torch.from_numpy(v) for k, v in state.items() if k.startswith(prefix)}
            )
            module.eval()
        return self

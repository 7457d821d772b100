"""A JSON-friendly summary of :class:`DataSplits` (what ``densify data info`` prints)."""

from __future__ import annotations

from typing import Any

from densify.data._imageset import DataSplits, ImageSet


def _split(images: ImageSet) -> dict[str, Any]:
    return {
        "n": len(images),
        "value_range": [int(images.images.min()), int(images.images.max())] if len(images) else [0, 0],
        "mean": float(images.images.mean()) if len(images) else 0.0,
    }


def factor_summary(data: DataSplits) -> list[dict[str, Any]]:
    """Per latent factor of a known-factor dataset: its observed [min, max] in each split (empty for real data)."""
    if data.train.factors is None or data.heldout.factors is None:
        return []
    out = []
    for j, name in enumerate(data.train.factor_names):
        row: dict[str, Any] = {"name": name}
        for split in ("train", "heldout"):
            values = getattr(data, split).factors[:, j]
            row[split] = [round(float(values.min()), 4), round(float(values.max()), 4)] if len(values) else []
        out.append(row)
    return out


def summarise(data: DataSplits) -> dict[str, Any]:
    """Counts per class and split, image shape (the working size; ``stored_shape``: what recipes augment), value
    range, provenance of ``data``, the notes on what loading converted and, for known-factor datasets, each latent
    factor's range per split."""
    train_counts, held_counts = data.train.class_counts(), data.heldout.class_counts()
    return {
        "name": data.name,
        "source": data.source,
        "heldout_origin": data.heldout_origin,
        "shape": list(data.train.shape),
        "stored_shape": list(data.train.source_shape),
        "notes": list(data.notes),
        "factors": factor_summary(data),
        "train": _split(data.train),
        "heldout": _split(data.heldout),
        "classes": [
            {"name": name, "train": int(train_counts[i]), "heldout": int(held_counts[i])}
            for i, name in enumerate(data.classes)
        ],
    }

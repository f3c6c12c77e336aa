"""``torchvision.transforms.v2.CutMix/MixUp`` drop-ins (:class:`CutMix`, :class:`MixUp`),
built on :mod:`mixkit.augment`, and the labels lookup of their inputs.

They keep the v2 call (``t(images, labels)``, also ``t((images, labels))`` or a dict), so
they drop into a ``collate_fn``; extra ``mode="elem"`` (per-sample λ and box, torchvision
#8191) and a ``generator`` (torchvision #7027). For seeded mixing inside DataLoader workers
that is fresh every epoch use :class:`mixkit.collate.MixCollate`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mixkit import augment
from mixkit.augment.params import MixParams


def _default_labels(inputs: Any) -> Any:
    """torchvision's default heuristic: the second element of a tuple/list, or the dict entry
    named ``labels`` / ``label`` (case-insensitive)."""
    if isinstance(inputs, tuple | list) and len(inputs) >= 2:
        return inputs[1]
    if isinstance(inputs, dict):
        for name in ("labels", "label"):
            for key in inputs:
                if isinstance(key, str) and key.lower() == name:
                    return inputs[key]
    raise ValueError(
        "could not find the labels: pass (images, labels), a dict with a 'labels' key, or "
        "labels_getter=callable"
    )


class _TorchvisionMix(torch.nn.Module):
    """Shared pytree handling of the torchvision-style adapters."""

    _inner: augment.MixTransform
    _INNER: Callable[..., augment.MixTransform]  # the mixkit module a subclass wraps

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        num_classes: int | None = None,
        labels_getter: Callable[[Any], Any] | str = "default",
        mode: str = "batch",
        pairing: str = "roll",
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__()
        inner = type(self)._INNER(
            alpha, mode=mode, num_classes=num_classes, pairing=pairing, generator=generator
        )
        if labels_getter == "default":
            labels_getter = _default_labels
        elif not callable(labels_getter):
            raise ValueError(
                f"labels_getter must be 'default' or a callable, got {labels_getter!r}"
            )
        self._inner = inner
        self._labels_getter = labels_getter
        self.last_params: MixParams | None = None

    @property
    def num_classes(self) -> int | None:
        return self._inner.num_classes

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | int | None = None,
    ) -> MixParams:
        """Draw the parameters for a batch of shape (B, C, H, W) (CPU tensors)."""
        return self._inner.draw(batch_shape, generator)

    def forward(
        self,
        *inputs: Any,
        params: MixParams | None = None,
        generator: torch.Generator | int | None = None,
    ) -> Any:
        """``t(images, labels)``, ``t((images, labels))`` or ``t({"image": x, "labels": y})``.

        As in torchvision, the first tensor that is not the labels is the image batch
        (B, C, H, W) float or uint8; it is mixed with one draw (``params`` replays one), the
        labels ((B,) int64 or (B, K) float probabilities) become (B, K) float32 soft targets,
        other leaves pass through. Returns the input's structure."""
        from torch.utils._pytree import tree_flatten, tree_unflatten

        structure = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = tree_flatten(structure)
        for leaf in flat:
            kind = type(leaf).__name__
            if type(leaf).__module__.startswith("PIL") or kind in ("BoundingBoxes", "Mask"):
                raise ValueError(
                    f"{type(self).__name__}() does not take {kind} inputs: stack images into a "
                    "(B, C, H, W) tensor; for masks and boxes use mixkit.augment modules"
                )
        labels = self._labels_getter(structure)
        if not isinstance(labels, Tensor):
            raise ValueError(f"labels must be a tensor, got {type(labels).__name__}")
        if labels.ndim not in (1, 2):
            raise ValueError(
                "labels must be (B,) class ids or (B, num_classes) probabilities, "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.ndim == 1 and self.num_classes is None:
            raise ValueError("num_classes is required when labels are class ids (B,)")
        # Like torchvision, the first tensor that is not the labels is the image batch; any
        # other leaf passes through unchanged.
        li = _index_of(flat, labels)
        ii = next((i for i, leaf in enumerate(flat) if isinstance(leaf, Tensor) and i != li), None)
        if ii is None:
            raise ValueError("no image tensor (B, C, H, W) found next to the labels")
        images, b = flat[ii], labels.shape[0]
        if images.ndim != 4 or images.shape[0] != b:
            raise ValueError(
                f"images must be a (B, C, H, W) tensor with B = {b} (the labels' batch size), "
                f"got {tuple(images.shape)}"
            )
        if params is None:
            params = self._inner.draw(images.shape, generator)
        self.last_params = params
        res = self._inner.apply(params, images, labels)
        out = list(flat)
        out[ii], out[li] = res.images, res.labels
        return tree_unflatten(out, spec)

    def extra_repr(self) -> str:
        return self._inner.extra_repr()


def _index_of(flat: list[Any], obj: Any) -> int:
    for i, leaf in enumerate(flat):
        if leaf is obj:
            return i
    raise ValueError("the labels returned by labels_getter are not part of the inputs")


class CutMix(_TorchvisionMix):
    """``torchvision.transforms.v2.CutMix`` drop-in: ``cutmix(images, labels)``
    (torchvision ``transforms/v2/_augment.py``).

    λ ~ Beta(alpha, alpha); a box of area ≈ (1-λ)·HW with uniform centre, clipped at the
    border; λ is the exact kept fraction after clipping (torchvision's ``lam_adjusted``).
    Box sides are ``round(H·√(1-λ))`` (torchvision: ``2·int(0.5·H·√(1-λ))``, always even).
    Partners: ``pairing="roll"`` (torchvision: sample i takes sample i-1, so the batch must be
    shuffled), or ``"cycle"`` (a random B-cycle, no shuffling needed).

    Args:
        alpha: Beta parameter.
        num_classes: K; needed for (B,) class-id labels.
        labels_getter: ``"default"`` or a callable returning the labels tensor from the input.
        mode: ``"batch"`` (one λ and box per batch, torchvision) or ``"elem"`` (per sample).
        pairing: ``"roll"`` (default), ``"cycle"``, ``"flip"`` or ``"random"``.
        generator: CPU ``torch.Generator`` or int seed; None uses torch's global RNG.
    """

    _INNER = functools.partial(augment.CutMix, correct_lam=True)


class MixUp(_TorchvisionMix):
    """``torchvision.transforms.v2.MixUp`` drop-in: ``mixup(images, labels)``
    (torchvision ``transforms/v2/_augment.py``).

    ``x = λ·x_i + (1-λ)·x_partner``, λ ~ Beta(alpha, alpha); uint8 images are rounded to
    nearest (torchvision fails on uint8). Arguments as :class:`CutMix`.
    """

    _INNER = augment.MixUp

"""``torchvision.transforms.v2.CutMix/MixUp`` drop-ins (:class:`CutMix`, :class:`MixUp`),
built on :mod:`mixkit.augment`, and the labels lookup of their inputs.

They keep the v2 call (``t(images, labels)``, also ``t((images, labels))``,
``t(images, {"labels": labels})`` or a dict), so they drop into a ``collate_fn``; extra
``mode="elem"`` (per-sample λ and box, torchvision #8191) and a ``generator`` (torchvision
#7027). ``tv_tensors.Image`` / ``Video`` inputs come back as the same type. For seeded
mixing inside DataLoader workers that is fresh every epoch use
:class:`mixkit.collate.MixCollate`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from mixkit import augment
from mixkit.augment.apply import apply_images, keep_type
from mixkit.augment.params import MixParams
from mixkit.augment.settings import settings_repr
from mixkit.ops import checks


def label_key(mapping: Mapping[Any, Any]) -> Any | None:
    """The labels' key of a dict, as torchvision's default ``labels_getter`` finds it
    (``transforms/v2/_utils.py::_find_labels_default_heuristic``): the first key equal to
    ``"labels"`` ignoring case, else the first key containing ``"label"`` anywhere, ignoring
    case (e.g. ``"SOME_KEY_WITH_LaBeL"``); None if there is none. Non-string keys are
    skipped (torchvision would fail on them)."""
    keys = [k for k in mapping if isinstance(k, str)]
    exact = next((k for k in keys if k.lower() == "labels"), None)
    return exact if exact is not None else next((k for k in keys if "label" in k.lower()), None)


def _default_labels(inputs: Any) -> Any:
    """torchvision's default heuristic: of a tuple/list its second item, which is the labels
    tensor or a dict holding it (``(images, {"labels": y})``, the detection layout); of a
    dict its label-like entry (:func:`label_key`)."""
    if isinstance(inputs, tuple | list):
        if len(inputs) < 2:
            raise ValueError(
                "could not find the labels: a tuple/list input must be (images, labels) or "
                f"(images, {{'labels': labels}}), got {len(inputs)} item(s)"
            )
        inputs = inputs[1]
        if not isinstance(inputs, Mapping):
            return inputs  # the labels tensor (anything else is refused by the caller)
    if isinstance(inputs, Tensor):
        return inputs
    if isinstance(inputs, Mapping):
        key = label_key(inputs)
        if key is not None:
            return inputs[key]
    raise ValueError(
        "could not find the labels: pass (images, labels), (images, {'labels': labels}), a "
        "dict with a label-like key ('labels', or any key containing 'label'), or "
        "labels_getter=callable"
    )


def _type_names(leaf: Any) -> set[str]:
    return {c.__name__ for c in type(leaf).__mro__}


def _visual_kind(leaf: Any) -> str | None:
    """``"video"`` / ``"image"`` for a torchvision ``tv_tensors.Video`` / ``Image`` (any
    tensor subclass of that name, so no torchvision import is needed), else None."""
    if not isinstance(leaf, Tensor) or type(leaf) is Tensor:
        return None
    names = _type_names(leaf)
    return "video" if "Video" in names else "image" if "Image" in names else None


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
        check_layout: bool = True,
    ) -> None:
        super().__init__()
        inner = type(self)._INNER(
            alpha,
            mode=mode,
            num_classes=num_classes,
            pairing=pairing,
            generator=generator,
            check_layout=check_layout,
        )
        if labels_getter == "default":
            getter = _default_labels
        elif callable(labels_getter):
            getter = labels_getter
        else:
            raise ValueError(
                f"labels_getter must be 'default' or a callable, got {labels_getter!r}"
            )
        self._inner = inner
        self._labels_getter = getter
        self.labels_getter = labels_getter
        self.last_params: MixParams | None = None

    # The settings live on the wrapped module; read-only views for repr and introspection.
    alpha = property(lambda self: self._inner.alpha)
    num_classes = property(lambda self: self._inner.num_classes)
    mode = property(lambda self: self._inner.mode)
    pairing = property(lambda self: self._inner.pairing)
    generator = property(lambda self: self._inner.generator)
    check_layout = property(lambda self: self._inner.check_layout)

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
        """``t(images, labels)``, ``t((images, labels))``, ``t(images, {"labels": y})`` or
        ``t({"image": x, "labels": y})``.

        As in torchvision, every ``tv_tensors.Image`` (B, C, H, W) and ``Video``
        (B, T, C, H, W) leaf is mixed, or, without any, the first plain tensor that is not
        the labels (B, C, H, W); float or uint8, all with one draw (``params`` replays one),
        each returned as its input type. The labels ((B,) int64 or (B, K) float
        probabilities) become (B, K) float32 soft targets on the images' device; other
        leaves pass through. Returns the input's structure."""
        from torch.utils._pytree import tree_flatten, tree_unflatten

        structure = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = tree_flatten(structure)
        for leaf in flat:
            names = _type_names(leaf)
            kind = type(leaf).__name__
            if type(leaf).__module__.startswith("PIL") or names & {"BoundingBoxes", "Mask"}:
                raise ValueError(
                    f"{type(self).__name__}() does not take {kind} inputs: stack images into a "
                    "(B, C, H, W) tensor; for masks and boxes use mixkit.augment modules "
                    "(mixkit.compat.to_box_batch converts detection targets)"
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
        li = _index_of(flat, labels)
        chosen = [i for i, leaf in enumerate(flat) if i != li and _visual_kind(leaf)]
        if not chosen:
            first = (i for i, leaf in enumerate(flat) if isinstance(leaf, Tensor) and i != li)
            chosen = [i for i in (next(first, None),) if i is not None]
        if not chosen:
            raise ValueError("no image tensor (B, C, H, W) found next to the labels")
        batches = [self._as_batch(flat[i], labels.shape[0]) for i in chosen]
        if params is None:
            params = self._inner.draw(batches[0].shape, generator)
        self.last_params = params
        out = list(flat)
        for i, batch in zip(chosen, batches, strict=True):
            mixed = apply_images(
                params, batch, kernel=self._inner._kernel, check_finite=self._inner.check_finite
            )
            out[i] = keep_type(mixed.reshape(flat[i].shape), flat[i])
        device = flat[chosen[0]].device
        out[li] = self._inner.apply(params, labels=labels.to(device, non_blocking=True)).labels
        return tree_unflatten(out, spec)

    def _as_batch(self, x: Tensor, b: int) -> Tensor:
        """Images (B, C, H, W) as they are, videos (B, T, C, H, W) as (B, T*C, H, W); checks
        the batch size and (``check_layout``) that channels come before H and W."""
        video = _visual_kind(x) == "video"
        ndim, layout = (5, "(B, T, C, H, W)") if video else (4, "(B, C, H, W)")
        if x.ndim != ndim or x.shape[0] != b:
            what = "videos" if video else "images"
            raise ValueError(
                f"{what} must be a {layout} tensor with B = {b} (the labels' batch size), "
                f"got {tuple(x.shape)}"
            )
        if self.check_layout:
            checks.check_channels_first(
                x.shape, "videos" if video else "images", channel_dim=ndim - 3
            )
        return x.flatten(1, 2) if video else x

    def extra_repr(self) -> str:
        """Every constructor argument that differs from its default."""
        return settings_repr(self)


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
        labels_getter: ``"default"`` (torchvision's lookup, see :func:`label_key`) or a
            callable returning the labels tensor from the input.
        mode: ``"batch"`` (one λ and box per batch, torchvision) or ``"elem"`` (per sample).
        pairing: ``"roll"`` (default), ``"cycle"``, ``"flip"`` or ``"random"``.
        generator: CPU ``torch.Generator`` or int seed; None uses torch's global RNG.
        check_layout: ValueError for channels-last images (see ``MixTransform``).
    """

    _INNER = functools.partial(augment.CutMix, correct_lam=True)


class MixUp(_TorchvisionMix):
    """``torchvision.transforms.v2.MixUp`` drop-in: ``mixup(images, labels)``
    (torchvision ``transforms/v2/_augment.py``).

    ``x = λ·x_i + (1-λ)·x_partner``, λ ~ Beta(alpha, alpha); uint8 images are rounded to
    nearest (torchvision fails on uint8). Arguments as :class:`CutMix`.
    """

    _INNER = augment.MixUp

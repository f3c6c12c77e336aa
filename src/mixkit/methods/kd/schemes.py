"""Data-augmentation schemes that build the distillation input x′ from a batch x.

Source: Good-DA-in-KD ``helper/loops.py::get_mixed_input`` (identity, flip, crop+flip, cutout,
autoaugment, mixup, cutmix, cutmix_pick) (the official code). Every scheme maps pixel images
(B, C, H, W) — uint8, or float in [0, 1] — to new pixel images of the same dtype; all random
draws come from the ``generator`` argument (same seed => same bytes) and are vectorised over
the batch. By default each sample gets its own draw; ``per_batch=True`` reproduces the
official code, which applies torchvision transforms / one λ and box to the whole batch tensor.

``cutmix_pick`` (CutMixPick) needs models: it gets them through a ``SchemeContext``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit import augment, data
from mixkit.augment.transforms.cutmix import OfficialBoxCutMix
from mixkit.methods.kd.autoaugment import POLICIES, autoaugment, check_pixel_batch

CRITERIA = ("teacher_entropy", "student_entropy", "kld")


@dataclasses.dataclass
class SchemeContext:
    """What model-driven schemes need: the normalisation of pixel images to model inputs and
    the frozen teacher / current student. ``mean``/``std`` per channel in [0, 1] units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    teacher: nn.Module | None = None
    student: nn.Module | None = None
    temperature: float = 4.0

    def normalize(self, images: Tensor) -> Tensor:
        """Pixel images (uint8, or float in [0, 1]) -> normalised float32 model input."""
        if images.dtype == torch.uint8:
            return data.to_float(images, self.mean, self.std)
        m = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() - m) / s


class Scheme:
    """Base class. ``needs``: the models the scheme reads from the context."""

    name = "scheme"
    needs: frozenset[str] = frozenset()

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        ctx: SchemeContext | None = None,
    ) -> Tensor:
        check_pixel_batch(images, "pixel tensor")
        for model in self.needs:
            if ctx is None or getattr(ctx, model) is None:
                raise ValueError(f"DA scheme {self.name!r} needs a {model} in the SchemeContext")
        return self._apply(images, generator, ctx)

    def _apply(self, images, generator, ctx) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith(("_", "last_"))
        )
        return f"{type(self).__name__}({fields})"


class Identity(Scheme):
    """x′ = x (a copy): the KL term on x is counted twice (official ``identity``)."""

    name = "identity"

    def _apply(self, images, generator, ctx) -> Tensor:
        return images.clone()


class Flip(Scheme):
    """Horizontal flip with probability 0.5."""

    name = "flip"

    def __init__(self, per_batch: bool = False) -> None:
        self.per_batch = bool(per_batch)

    def _apply(self, images, generator, ctx) -> Tensor:
        return data.random_crop_flip(images, 0, generator, per_sample=not self.per_batch)


class CropFlip(Scheme):
    """Zero-pad by ``pad`` (4 for CIFAR in the official code), random crop, random flip."""

    name = "crop_flip"

    def __init__(self, pad: int = 4, per_batch: bool = False) -> None:
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"crop_pad must be an int >= 0, got {pad!r}")
        self.pad = pad
        self.per_batch = bool(per_batch)

    def _apply(self, images, generator, ctx) -> Tensor:
        return data.random_crop_flip(images, self.pad, generator, per_sample=not self.per_batch)


class CutoutScheme(Scheme):
    """One ``length x length`` hole (8 for CIFAR-100 in the official code), centre uniform,
    clipped; filled with the dataset mean (the official code zeroes the *normalised* input)."""

    name = "cutout"

    def __init__(self, length: int = 8, per_batch: bool = False) -> None:
        self._cutout = augment.Cutout(length, mode="batch" if per_batch else "elem")
        self.length = length
        self.per_batch = bool(per_batch)

    def _apply(self, images, generator, ctx) -> Tensor:
        params = self._cutout.draw(images.shape, generator)
        mean = ctx.mean if ctx is not None else (0.0,) * images.shape[1]
        if images.dtype == torch.uint8:  # the mean in pixel units, as the images hold it
            mean = [round(m * 255) for m in mean]
        return augment.apply_images(params.replace(fill=tuple(float(m) for m in mean)), images)


class AutoAugmentScheme(Scheme):
    """AutoAugment CIFAR-10 policy, one sub-policy per sample (see ``kd.autoaugment``)."""

    name = "autoaugment"

    def __init__(self, policy: str = "cifar10", per_batch: bool = False) -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"autoaugment_policy must be one of {sorted(POLICIES)}, got {policy!r}"
            )
        self.policy = policy
        self.per_batch = bool(per_batch)

    def _apply(self, images, generator, ctx) -> Tensor:
        return autoaugment(images, generator, self.policy, self.per_batch)


class _PartnerMixScheme(Scheme):
    """x mixed with a partner of its batch by the ``mixkit.augment`` class ``mixer``,
    λ ~ Beta(alpha, alpha); ``per_batch``: one draw for the whole batch."""

    mixer: type[augment.MixTransform]

    def __init__(self, alpha: float = 1.0, per_batch: bool = False) -> None:
        self._mix = self.mixer(alpha, mode="batch" if per_batch else "elem")
        self.alpha = alpha
        self.per_batch = bool(per_batch)

    def _apply(self, images, generator, ctx) -> Tensor:
        return self._mix(images, generator=generator)


class MixUpScheme(_PartnerMixScheme):
    """MixUp of x with a partner, λ ~ Beta(alpha, alpha) (official: alpha 1, one λ per batch)."""

    name = "mixup"
    mixer = augment.MixUp


class CutMixScheme(_PartnerMixScheme):
    """CutMix of x, λ ~ Beta(alpha, alpha), the official clipped box law
    (:class:`OfficialBoxCutMix`), partner from a random cycle (no self-pairs, like the
    official derangement); official: one box per batch (``per_batch``), else one per sample."""

    name = "cutmix"
    mixer = OfficialBoxCutMix


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy of softmax(logits) at T = 1, (N, K) -> (N,)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, chunk: int = 512) -> Tensor:
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])
    finally:
        model.train(was)


def _scores(criterion: str, t: Tensor | None, s: Tensor | None, temperature: float) -> Tensor:
    if criterion == "teacher_entropy":
        return entropy(t)
    if criterion == "student_entropy":
        return entropy(s)
    log_t = F.log_softmax(t.float() / temperature, dim=1)
    log_s = F.log_softmax(s.float() / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


@torch.no_grad()
def pick_scores(x: Tensor, criterion: str, ctx: SchemeContext) -> Tensor:
    """CutMixPick score per normalised input (N, C, H, W) -> (N,), higher = kept first.

    ``teacher_entropy`` / ``student_entropy``: entropy of softmax at T=1; ``kld``:
    KL(softmax(t/T) || softmax(s/T)) (official ``get_entropy_batch``). Models run in eval
    mode (the official code scores with the student in its training mode, which also moves
    its BatchNorm running statistics).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"pick_criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    t = _logits(ctx.teacher, x) if criterion != "student_entropy" else None
    s = _logits(ctx.student, x) if criterion != "teacher_entropy" else None
    return _scores(criterion, t, s, ctx.temperature)


class CutMixPick(Scheme):
    """CutMixPick (Good-DA-in-KD ``cutmix_pick``): ``pool_factor`` independent CutMix draws of
    the batch form a pool of ``pool_factor * B`` images; each is scored by ``criterion``
    (``pick_scores``) and the ``keep`` (default B, i.e. the top 1/pool_factor) highest-scored
    are returned. After a call, ``last_pool``, ``last_scores`` (pool order) and ``last_index``
    (indices into the pool, highest score first) describe the pick."""

    name = "cutmix_pick"

    def __init__(
        self,
        criterion: str = "teacher_entropy",
        pool_factor: int = 2,
        keep: int | None = None,
        alpha: float = 1.0,
        per_batch: bool = False,
    ) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"pick_criterion must be one of {list(CRITERIA)}, got {criterion!r}")
        if isinstance(pool_factor, bool) or not isinstance(pool_factor, int) or pool_factor < 2:
            # official: ``assert opt.mix_n_run >= 2`` for cutmix_pick
            raise ValueError(f"pool_factor must be an int >= 2, got {pool_factor!r}")
        if keep is not None and (not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep must be an int >= 1 or None, got {keep!r}")
        self.criterion = criterion
        self.pool_factor = pool_factor
        self.keep = keep
        self.alpha = alpha
        self.per_batch = bool(per_batch)
        self._cutmix = CutMixScheme(alpha, per_batch)
        self.needs = frozenset(
            {"teacher_entropy": {"teacher"}, "student_entropy": {"student"}}.get(
                criterion, {"teacher", "student"}
            )
        )
        self.name = {"teacher_entropy": "cutmix_pick_t", "student_entropy": "cutmix_pick_s"}.get(
            criterion, "cutmix_pick_kld"
        )
        self.last_pool: Tensor | None = None
        self.last_scores: Tensor | None = None
        self.last_index: Tensor | None = None
        self.last_teacher_logits: Tensor | None = None

    @torch.no_grad()
    def _apply(self, images, generator, ctx) -> Tensor:
        pool = torch.cat([self._cutmix(images, generator) for _ in range(self.pool_factor)])
        x = ctx.normalize(pool)
        t = _logits(ctx.teacher, x) if self.criterion != "student_entropy" else None
        s = _logits(ctx.student, x) if self.criterion != "teacher_entropy" else None
        scores = _scores(self.criterion, t, s, ctx.temperature)
        keep = min(self.keep or images.shape[0], pool.shape[0])
        index = torch.topk(scores, keep, sorted=True).indices
        self.last_pool, self.last_scores, self.last_index = pool, scores, index
        # The eval-mode teacher's logits on the kept images: the trainer reuses them as t(x′).
        self.last_teacher_logits = t.index_select(0, index) if t is not None else None
        return pool.index_select(0, index)


def teacher_logits_of_last(scheme: Scheme) -> Tensor | None:
    """The eval-mode teacher's logits on the scheme's last output when the scheme computed
    them anyway (CutMixPick with a teacher criterion), else None."""
    return getattr(scheme, "last_teacher_logits", None)


# ----------------------------------------------------------------------------- registry
_ALIASES = {"crop+flip": "crop_flip", "cropflip": "crop_flip", "none": "identity"}
_PICK = {
    "cutmix_pick": None,  # criterion from the options
    "cutmix_pick_t": "teacher_entropy",
    "cutmix_pick_s": "student_entropy",
    "cutmix_pick_kld": "kld",
}

SCHEMES: dict[str, Callable[..., Scheme]] = {
    "identity": lambda o: Identity(),
    "flip": lambda o: Flip(o["per_batch"]),
    "crop_flip": lambda o: CropFlip(o["crop_pad"], o["per_batch"]),
    "cutout": lambda o: CutoutScheme(o["cutout_length"], o["per_batch"]),
    "autoaugment": lambda o: AutoAugmentScheme(o["autoaugment_policy"], o["per_batch"]),
    "mixup": lambda o: MixUpScheme(o["mix_alpha"], o["per_batch"]),
    "cutmix": lambda o: CutMixScheme(o["mix_alpha"], o["per_batch"]),
    **{
        k: (
            lambda o, c=c: CutMixPick(
                c or o["pick_criterion"], o["pool_factor"], None, o["mix_alpha"], o["per_batch"]
            )
        )
        for k, c in _PICK.items()
    },
}

_DEFAULTS = {
    "per_batch": False,
    "crop_pad": 4,
    "cutout_length": 8,
    "autoaugment_policy": "cifar10",
    "mix_alpha": 1.0,
    "pool_factor": 2,
    "pick_criterion": "teacher_entropy",
}


def scheme_names() -> list[str]:
    """Every name ``canonical_name`` accepts: the registry names, then the aliases."""
    return sorted(SCHEMES) + sorted(_ALIASES)


def canonical_name(name: str) -> str:
    """Registry name of ``name`` (aliases: ``crop+flip``, ``none``); ValueError if unknown."""
    key = _ALIASES.get(name, name)
    if key not in SCHEMES:
        raise ValueError(f"da must be one of {sorted(SCHEMES)}, got {name!r}")
    return key


def build_scheme(name: str, **options) -> Scheme:
    """Build scheme ``name`` from options (``per_batch``, ``crop_pad``, ``cutout_length``,
    ``autoaugment_policy``, ``mix_alpha``, ``pool_factor``, ``pick_criterion``)."""
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown DA scheme options {sorted(unknown)}; valid: {sorted(_DEFAULTS)}")
    return SCHEMES[canonical_name(name)]({**_DEFAULTS, **options})

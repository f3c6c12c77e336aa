"""One knowledge-distillation step as a library building block, :class:`DistillStep`: the DA
scheme makes x′ from the batch x, the frozen teacher labels x and x′, the student sees both,
and ``kd_loss`` combines them (Good-DA-in-KD ``helper/loops.py::train_distill``). Works with
any teacher and student ``nn.Module`` mapping (B, C, H, W) float images to (B, K) logits; the
caller owns the optimiser step, as with ``mixkit.methods.recursivemix.RecursiveMixStep``."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mixkit.methods.kd.loss import kd_loss
from mixkit.methods.kd.schemes import (
    Identity,
    Scheme,
    SchemeContext,
    build_scheme,
    teacher_logits_of_last,
)


class DistillOutput(NamedTuple):
    loss: Tensor  # () the weighted total
    parts: dict[str, Tensor]  # loss, ce, kl, kl_aug (unweighted parts)
    x_aug: Tensor  # (B', C, H, W) pixel x′ the scheme made (images' dtype)


class DistillStep:
    """``step(student, images, labels)``: x′ = scheme(x), teacher (eval, no grad) on x and
    x′, student on x and x′, ``kd_loss``. Back-propagate ``.loss`` yourself.

    Args:
        teacher: the teacher network; it is put in eval mode and runs without gradients.
        scheme: a :class:`~mixkit.methods.kd.schemes.Scheme` or a registry name
            (``"cutmix_pick_t"``, ``"cutmix"``, ...; ``scheme_options`` go to
            :func:`~mixkit.methods.kd.schemes.build_scheme`).
        mean, std: per-channel statistics in [0, 1] units; images are pixels (uint8, or float
            in [0, 1]) and are normalised here.
        temperature, ce_weight, kd_weight, kl_weight, aug_kl_weight: the loss (``kd_loss``;
            official ``-r 0.1 -a 0.9 --lw_mix [1,0,1]``, T = 4).
        joint_forward: one student pass over cat(x, x′) instead of two (official: two).
        generator: the ``torch.Generator`` every scheme draw comes from.
        channels_last: feed the models channels_last batches.

    ``__call__(student, images (B, C, H, W), labels (B,) int64, teacher_logits=None)``:
    ``teacher_logits`` (B, K), when given, replace the teacher's pass on x (a cache for a
    fixed x). CutMixPick with a teacher criterion already has the teacher's logits on x′;
    they are reused.
    """

    def __init__(
        self,
        teacher: nn.Module,
        scheme: Scheme | str = "cutmix_pick_t",
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        temperature: float = 4.0,
        ce_weight: float = 0.1,
        kd_weight: float = 0.9,
        kl_weight: float = 1.0,
        aug_kl_weight: float = 1.0,
        joint_forward: bool = False,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        **scheme_options: Any,
    ) -> None:
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        if isinstance(scheme, str):
            scheme = build_scheme(scheme, **scheme_options)
        elif scheme_options:
            raise ValueError("scheme_options apply to a scheme given by name only")
        if not isinstance(scheme, Scheme):
            raise TypeError(f"scheme must be a Scheme or a name, got {type(scheme).__name__}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.teacher, self.scheme, self.generator = teacher.eval(), scheme, generator
        self.ctx = SchemeContext(tuple(mean), tuple(std), teacher, None, temperature)
        self.weights = {
            "temperature": temperature, "ce_weight": ce_weight, "kd_weight": kd_weight,
            "kl_weight": kl_weight, "aug_kl_weight": aug_kl_weight,
        }  # fmt: skip
        self.joint_forward = bool(joint_forward)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def _input(self, pixels: Tensor) -> Tensor:
        return self.ctx.normalize(pixels).contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def _teacher(
        self, x: Tensor, x_aug: Tensor, teacher_logits: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if self.teacher.training:
            self.teacher.eval()
        t = self.teacher(x) if teacher_logits is None else teacher_logits.to(x.device)
        t_aug = t if isinstance(self.scheme, Identity) else teacher_logits_of_last(self.scheme)
        return t, self.teacher(x_aug) if t_aug is None else t_aug

    def __call__(
        self,
        student: nn.Module,
        images: Tensor,
        labels: Tensor,
        teacher_logits: Tensor | None = None,
    ) -> DistillOutput:
        self.ctx.student = student  # CutMixPick's student criteria score with it (eval mode)
        x_aug_pixels = self.scheme(images, self.generator, self.ctx)
        x, x_aug = self._input(images), self._input(x_aug_pixels)
        t, t_aug = self._teacher(x, x_aug, teacher_logits)
        if self.joint_forward:
            s, s_aug = student(torch.cat([x, x_aug])).split([len(x), len(x_aug)])
        else:
            s, s_aug = student(x), student(x_aug)
        parts = kd_loss(s, t, labels, s_aug, t_aug, **self.weights)
        return DistillOutput(parts["loss"], parts, x_aug_pixels)

"""Dual Teacher (Na et al. NeurIPS 2023, "Switching Temporary Teachers") as a building block:
:class:`DualTeacher` — two temporary teachers in alternating shifts, box mix and ClassMix,
and implicit consistency."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from mixkit.methods.semiseg.method_base import (
    TeacherMethod,
    UnsupBatch,
    check_images,
    check_unit,
    check_valid,
)
from mixkit.methods.semiseg.mix import SegMixer
from mixkit.methods.semiseg.teacher_updates import ema_update, frozen_copy
from mixkit.methods.semiseg.views import strong_colour

CONFIDENCE_MAPS = ("unmixed", "mixed")


def _swapping(mixer: SegMixer) -> SegMixer:
    """``mixer`` pairing by a random cycle, which for a batch of 2 is the swap."""
    if mixer.mixer is None:
        return mixer
    inner = copy.copy(mixer.mixer)
    inner.pairing = "cycle"
    return SegMixer(mixer.name, inner)


class DualTeacher(TeacherMethod):
    """Dual Teacher (naver-ai/dual-teacher ``tools/train.py::train_dual``, ``update_ema``,
    ``seg_core/augmentations.py``).

    - Epoch e (``start_epoch(e)``): T1 with the box mixer ``mixer`` (CutMix) when e is even,
      T2 with ClassMix when odd; only that teacher is updated.
    - ``update``: ``a = min(1 - 1/(i+1), ema)``, ``T <- a T + (1 - a) S`` with i the step's
      index in the epoch — at i = 0, a = 0: the active teacher is RE-COPIED from the
      student at the start of its shift. Parameters only, unless ``ema_buffers``.
    - Strong view ``x_s`` = ColorJitter(.5, .5, .5, .25) + RandomGrayscale(.2) of ``x_u``.
    - Box-mix shift: mix ``x_u`` and the teacher's probabilities, then per-sample jitter
      (p .8, ±.25) and blur (p .5, σ .15-1.15) of the mixed image (``batch_transform``;
      its flip is left out: a flipped digit is another glyph); ``w_i`` = the image's share of
      pixels with confidence >= ``threshold`` (``compute_unsupervised_loss``), counted on
      the UNMIXED confidence map as the official ``cut_mixer`` never mixes it
      (``cutmix_confidence="mixed"``: on the mixed map instead).
    - ClassMix shift: mix the strong view; ``w`` = the batch's share of confident pixels
      (``compute_classmix`` / ``ClassMixLoss``); a batch of 2 always swaps the pair
      (official ``shuffle_index = [1, 0]``), larger batches use the mixer's pairing.
      Both: ``Σ w CE / #valid``.
    - Implicit consistency: ``Σ CE(S(x_s), argmax T(x_u)) [conf >= threshold] / #valid``,
      weight ``ic_weight``; "valid" is the unlabeled batch's own mask (the official
      ``compute_ic`` reads ``label_u`` from the labeled batch).
    Inputs to the student: ``(mixed, x_s)``; the mixed batch joins the labeled batch in one
    forward (``compute_cutmix``: ``model(torch.cat([imgs, image_aug]))``).
    """

    name = "dualteacher"

    def __init__(
        self,
        student: nn.Module,
        *,
        num_classes: int,
        ema: float = 0.99,
        threshold: float = 0.95,
        ic_weight: float = 0.2,
        mixer: SegMixer | str | None = "cutmix",
        classmix: SegMixer | str = "classmix",
        ema_buffers: bool = False,
        cutmix_confidence: str = "unmixed",
        **kw: Any,
    ) -> None:
        super().__init__(student, num_classes=num_classes, **kw)
        self.ema = check_unit("ema", ema)
        self.threshold = check_unit("threshold", threshold)
        if isinstance(ic_weight, bool) or not isinstance(ic_weight, (int, float)) or ic_weight < 0:
            raise ValueError(f"ic_weight must be a number >= 0, got {ic_weight!r}")
        self.ic_weight = float(ic_weight)
        self.mixer, self.classmix = self._mixer(mixer), self._mixer(classmix)
        if cutmix_confidence not in CONFIDENCE_MAPS:
            raise ValueError(
                f"cutmix_confidence must be one of {list(CONFIDENCE_MAPS)}, "
                f"got {cutmix_confidence!r}"
            )
        self.cutmix_confidence = cutmix_confidence
        self.classmix_pair = _swapping(self.classmix)
        self.ema_buffers = bool(ema_buffers)
        self.t1, self.t2 = frozen_copy(student), frozen_copy(student)
        self.epoch, self.iter = 0, 0

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def active_at(self, epoch: int) -> str:
        return "t1" if epoch % 2 == 0 else "t2"

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.iter = int(epoch), 0

    @torch.no_grad()
    def prepare(
        self, x_u: Tensor, *, valid: Tensor | None = None, generator: torch.Generator | None = None
    ) -> UnsupBatch:
        """The active teacher labels ``x_u`` (float [0, 1]); returns the mixed batch and the
        strong view with their targets. ``generator`` drives every draw."""
        check_images(x_u)
        valid = check_valid(valid, x_u)
        xs = self.normalise(strong_colour(x_u, generator, blur_p=0.0))
        probs = torch.softmax(
            self.teacher_logits(self.teachers()[self.active], self.normalise(x_u)), 1
        )
        conf_u, pseudo_u = probs.max(1)
        if self.active == "t1":  # box-mix shift
            params = self.mixer.draw(x_u.shape, generator, label_maps=pseudo_u)
            m = self.mixer.apply(params, images=x_u, probs=probs, valid=valid)
            mixed = self.normalise(strong_colour(
                m.images, generator, brightness=0.25, contrast=0.25, saturation=0.25,
                hue=0.25, jitter_p=0.8, gray_p=0.0, blur_p=0.5, blur_sigma=(0.15, 1.15),
            ))  # fmt: skip
            conf, pseudo = m.probs.max(1)
            sure = (conf >= self.threshold) & m.valid
            counted = sure
            if self.cutmix_confidence == "unmixed":
                counted = (conf_u >= self.threshold) & valid
            share = counted.flatten(1).sum(1) / m.valid.flatten(1).sum(1).clamp_min(1)
            weight = share.view(-1, 1, 1) * m.valid
        else:  # ClassMix shift
            classmix = self.classmix_pair if xs.shape[0] == 2 else self.classmix
            params = classmix.draw(xs.shape, generator, label_maps=pseudo_u)
            m = classmix.apply(params, images=xs, probs=probs, valid=valid)
            mixed = m.images
            conf, pseudo = m.probs.max(1)
            sure = (conf >= self.threshold) & m.valid
            weight = (sure.sum() / m.valid.sum().clamp_min(1)) * m.valid
        ic = ((conf_u >= self.threshold) & valid).float()
        rate = sure.sum().float() / m.valid.sum().float().clamp_min(1)
        return UnsupBatch(
            (mixed, xs), (pseudo, pseudo_u), (weight.float(), ic),
            (m.valid.sum().float(), valid.sum().float()), (1.0, self.ic_weight),
            {"pass_rate": rate},
        )  # fmt: skip

    def update(self, step: int) -> None:
        super().update(step)
        a = min(1.0 - 1.0 / (self.iter + 1), self.ema)
        ema_update(self.teachers()[self.active], self.student, a, buffers=self.ema_buffers)
        self.iter += 1

    def _own_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "iter": self.iter}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.iter = int(state["epoch"]), int(state["iter"])

"""PS-MT (Liu et al. CVPR 2022, "Perturbed and Strict Mean Teachers") as a building block:
:class:`PSMT` — two EMA teachers on duty in turn, a confidence-weighted strict CE, the
strong colour view, and T-VAT feature perturbation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.methods.semiseg.method_base import (
    TeacherMethod,
    UnsupBatch,
    check_images,
    check_unit,
    check_valid,
)
from mixkit.methods.semiseg.mix import SegMixer
from mixkit.methods.semiseg.net import bn_mode
from mixkit.methods.semiseg.schedules import cosine_rampup
from mixkit.methods.semiseg.teacher_updates import ema_update
from mixkit.methods.semiseg.views import strong_colour

TEACHERS = ("t1", "t2")
# PS-MT's strong view (``VocCode/Base/base_dataset.py::data_aug``): ColorJitter with
# probability 0.8, RandomGrayscale 0.2, Gaussian blur with probability 0.5, σ in (0.1, 2.0).
PSMT_STRONG = {"jitter_p": 0.8, "blur_sigma": (0.1, 2.0)}


def l2_normalise(d: Tensor) -> Tensor:
    """Per-sample L2 normalisation over all non-batch dims (PS-MT ``_l2_normalize``)."""
    return d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.ndim - 1))) + 1e-8)


def assist(core: Tensor, helper: Tensor, k: int) -> Tensor:
    """Keep ``helper``'s top-k classes per pixel and fill the rest from ``core`` (PS-MT
    ``VocCode/train.py::assist_mask_calculate``); (B, K, H, W) logits in and out."""
    top = helper.topk(min(k, helper.shape[1]), dim=1).indices
    keep = torch.zeros_like(helper, dtype=torch.bool).scatter_(1, top, True)
    return torch.where(keep, helper, core)


class PSMT(TeacherMethod):
    """PS-MT (yyliu01/PS-MT ``VocCode/train.py``, ``Base/base_trainer.py``,
    ``Model/Deeplabv3_plus/EntireModel.py``, ``Utils/losses.py::semi_ce_loss``).

    - Teachers T1, T2 start as copies of the student (the official ones are separately
      initialised; see docs/semiseg.md) and, during ``warmup_epochs``, are trained on
      labeled data by the loop with their own optimisers (:meth:`begin_warmup` makes them,
      ``teacher_optimizers``); after the warm-up they are EMA-only.
    - Epoch ``e >= warmup_epochs``: T1 is on duty when ``e - warmup_epochs`` is even, else
      T2 (``base_trainer.py``: ``curr_id = 1 if epoch % 2 != 0 else 2``, 1-based epochs);
      ``update`` EMA-updates only the on-duty teacher with keep rate ``ema`` over the whole
      state dict (``update_teachers``, 0.996).
    - Target: ``gamma t1 + (1 - gamma) t2`` of the teachers' logits on the weak view, the
      off-duty teacher reduced to its top-``assist_topk`` classes (official: 7; 0: off).
    - The student sees the strong colour view (labeled images too, :meth:`labeled_view`),
      CutMix-ed with the target logits; labeled and unlabeled batches go through the
      student in separate forwards (``EntireModel.forward``, so ``joint = False``).
    - Loss: ``w = max softmax(target)``; ``Σ w CE [w >= threshold] / #kept``, times
      ``weight * cosine_rampup(semi step, rampup_steps)``.
    - ``vat``: T-VAT — the student's encoder features get an adversarial perturbation
      (one power iteration, ``vat_xi``, ``vat_eps``) against the teachers' mean decoder
      output (``encoder_decoder.py::get_r_adv_t``); needs ``encode``/``decode`` on the nets.
    """

    name = "psmt"
    joint = False

    def __init__(
        self,
        student: nn.Module,
        *,
        ema: float = 0.996,
        threshold: float = 0.6,
        weight: float = 1.5,
        rampup_steps: float = 0.0,
        gamma: float = 0.5,
        assist_topk: int = 7,
        warmup_epochs: int = 0,
        mixer: SegMixer | str | None = "cutmix",
        vat: bool = False,
        vat_xi: float = 1e-6,
        vat_eps: float = 2.0,
        **kw: Any,
    ) -> None:
        super().__init__(student, **kw)
        self.ema = check_unit("ema", ema)
        self.threshold = check_unit("threshold", threshold)
        self.gamma = check_unit("gamma", gamma)
        numbers = {"weight": weight, "rampup_steps": rampup_steps, "assist_topk": assist_topk,
                   "warmup_epochs": warmup_epochs}  # fmt: skip
        for name, v in numbers.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if vat and not (hasattr(student, "encode") and hasattr(student, "decode")):
            raise ValueError("vat needs a student with encode(x) and decode(f, size) methods")
        self.weight, self.rampup_steps = float(weight), float(rampup_steps)
        self.assist_topk, self.warmup_epochs = int(assist_topk), int(warmup_epochs)
        self.mixer = self._mixer(mixer)
        self.vat, self.vat_xi, self.vat_eps = bool(vat), float(vat_xi), float(vat_eps)
        self.t1, self.t2 = copy.deepcopy(student), copy.deepcopy(student)
        self.teacher_optimizers: dict[str, torch.optim.Optimizer] | None = None
        self.epoch, self.semi_steps, self.ramp = 0, 0, 0.0
        self._vat_gen: torch.Generator | None = None
        self._freeze()

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def in_warmup(self, epoch: int | None = None) -> bool:
        return (self.epoch if epoch is None else epoch) < self.warmup_epochs

    def active_at(self, epoch: int) -> str:
        if self.in_warmup(epoch):
            return "warmup"
        return "t1" if (epoch - self.warmup_epochs) % 2 == 0 else "t2"

    def _freeze(self) -> None:
        for t in (self.t1, self.t2):
            for p in t.parameters():
                p.requires_grad_(self.teacher_optimizers is not None)

    def begin_warmup(self, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> None:
        """Give each teacher an optimiser (``make_optimizer(teacher)``) for the warm-up."""
        if self.warmup_epochs > 0 and self.in_warmup():
            for p in (*self.t1.parameters(), *self.t2.parameters()):
                p.requires_grad_(True)
            self.teacher_optimizers = {k: make_optimizer(t) for k, t in self.teachers().items()}

    def start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if not self.in_warmup() and self.teacher_optimizers is not None:
            self.teacher_optimizers = None  # official ``del self.optimizer1/2``: EMA only now
            self._freeze()

    def labeled_view(self, x_l: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Strong colour view ("strong aug for all the supervised images", ``_train_epoch``)."""
        return strong_colour(x_l, generator, **PSMT_STRONG)

    def _target(self, xu: Tensor) -> Tensor:
        l1, l2 = self.teacher_logits(self.t1, xu), self.teacher_logits(self.t2, xu)
        if self.assist_topk > 0:
            if self.active == "t1":
                l2 = assist(l1, l2, self.assist_topk)
            else:
                l1 = assist(l2, l1, self.assist_topk)
        return self.gamma * l1 + (1 - self.gamma) * l2

    @torch.no_grad()
    def prepare(
        self, x_u: Tensor, *, valid: Tensor | None = None, generator: torch.Generator | None = None
    ) -> UnsupBatch:
        """Ensemble target on the weak view ``x_u`` (float [0, 1]); the strong view is mixed
        with it. ``generator`` drives the colour, mixing and VAT draws."""
        check_images(x_u)
        valid = check_valid(valid, x_u)
        target = self._target(self.normalise(x_u))
        xs = self.normalise(strong_colour(x_u, generator, **PSMT_STRONG))
        params = self.mixer.draw(xs.shape, generator, label_maps=target.argmax(1))
        m = self.mixer.apply(params, images=xs, probs=target, valid=valid)
        w, pseudo = F.softmax(m.probs, 1).max(1)
        keep = (w >= self.threshold) & m.valid
        self.ramp = cosine_rampup(self.semi_steps, self.rampup_steps)
        self._vat_gen = generator
        rate = keep.sum().float() / m.valid.sum().float().clamp_min(1)
        return UnsupBatch((m.images,), (pseudo,), (w * keep,), (keep.sum().float(),),
                          (self.weight * self.ramp,), {"pass_rate": rate})  # fmt: skip

    def perturbation(self) -> Callable[[Tensor, tuple[int, int]], Tensor] | None:
        return self._vat_noise if self.vat else None

    def _vat_noise(self, f: Tensor, size: tuple[int, int]) -> Tensor:
        """``get_r_adv_t``: adversarial noise for the student's encoder features ``f`` of
        images of ``size`` (the teachers' decoders output at that size)."""
        x = f.detach().float()
        with bn_mode(self.t1, "eval"), bn_mode(self.t2, "eval"):
            with torch.no_grad():
                target = F.softmax(
                    (self.t1.decode(x, size) + self.t2.decode(x, size)).float() / 2, 1
                )
            d = torch.rand(x.shape, generator=self._vat_gen).sub(0.5).to(x.device)
            d = l2_normalise(d).requires_grad_(True)
            xp = x + self.vat_xi * d
            logit_hat = (self.t1.decode(xp, size) + self.t2.decode(xp, size)) / 2
            adv = F.kl_div(F.log_softmax(logit_hat.float(), 1), target, reduction="batchmean")
            (grad,) = torch.autograd.grad(adv, d)
        return (l2_normalise(grad) * self.vat_eps).to(f.dtype)

    def update(self, step: int) -> None:
        super().update(step)
        if self.in_warmup():
            return
        ema_update(self.teachers()[self.active], self.student, self.ema, buffers=True)
        self.semi_steps += 1

    def _own_state(self) -> dict[str, Any]:
        opts = self.teacher_optimizers
        saved = None if opts is None else {k: o.state_dict() for k, o in opts.items()}
        return {"epoch": self.epoch, "semi_steps": self.semi_steps, "ramp": self.ramp,
                "teacher_optimizers": saved}  # fmt: skip

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.semi_steps = int(state["epoch"]), int(state["semi_steps"])
        self.ramp = float(state["ramp"])
        saved = state["teacher_optimizers"]
        if saved is None:
            self.teacher_optimizers = None
        elif self.teacher_optimizers is None:
            raise ValueError("state holds warm-up optimisers: call begin_warmup() first")
        else:
            for k, o in self.teacher_optimizers.items():
                o.load_state_dict(saved[k])
        self._freeze()

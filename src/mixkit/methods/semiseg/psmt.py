"""PS-MT trainer (Liu et al. CVPR 2022): two EMA teachers on duty in turn, confidence-weighted
CE and T-VAT feature perturbation."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit import distributed
from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.losses import masked_mean
from mixkit.methods.semiseg.net import bn_mode
from mixkit.methods.semiseg.schedules import cosine_rampup
from mixkit.methods.semiseg.teacher_updates import ema_update
from mixkit.methods.semiseg.trainer_base import SemisegTrainer, StudentCall
from mixkit.methods.semiseg.views import strong_colour


def _l2_normalise(d: Tensor) -> Tensor:
    """Per-sample L2 normalisation over all non-batch dims (PS-MT ``_l2_normalize``)."""
    return d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.ndim - 1))) + 1e-8)


class PSMTTrainer(SemisegTrainer):
    """PS-MT (Liu et al. CVPR 2022; ``VocCode/train.py``, ``EntireModel.py``,
    ``Utils/losses.py::semi_ce_loss``).

    - Warm-up (``psmt_warmup_epochs``): student and both teachers trained separately on the
      labeled data with their own optimisers (``Base/base_trainer.py::train``).
    - Then each epoch one teacher is on duty (T1 on the 1st semi epoch, T2 on the 2nd, ...);
      only it is EMA-updated (keep rate ``psmt_ema`` = 0.996, over the whole state dict, BN
      buffers included, as ``update_teachers`` does).
    - Pseudo-target: ``γ t1 + (1-γ) t2`` of the teachers' logits on the weak view (optional
      ``assist_mask_calculate`` with ``psmt_assist_topk``); the student sees the strong colour
      view of the unlabeled batch, mixed together with the target logits.
    - Strict confidence-weighted CE: ``w = max softmax(target)``; mean over pixels with
      ``w >= psmt_threshold`` of ``w * CE(student, argmax target)``; weight
      ``psmt_weight * cosine_rampup`` over ``psmt_rampup_epochs`` semi epochs.
    - ``psmt_vat``: T-VAT on the student's encoder features (one power iteration, ``xi``,
      ``eps``; direction from the teachers' mean decoder output, teacher decoders in eval).
    """

    method = "psmt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The official teachers are built with pretrained_model=None, i.e. a different random
        # init from the student; at 0.996 the EMA needs ~1000 steps to forget it, longer than
        # this CPU budget, and averaging two unrelated nets is useless meanwhile. So both
        # teachers start as copies of the student's initial weights and then warm up
        # separately on their own labeled batches (diversity from data order).
        self.t1 = copy.deepcopy(self.student)
        self.t2 = copy.deepcopy(self.student)
        self.opt_t1: torch.optim.Optimizer | None = self._new_optimizer(self.t1)
        self.opt_t2: torch.optim.Optimizer | None = self._new_optimizer(self.t2)
        self.ramp = 0.0
        # warm-up training forwards of the teachers (DistributedDataParallel after distribute)
        self.teacher_forward: dict[str, nn.Module] = {
            "t1": StudentCall(self.t1),
            "t2": StudentCall(self.t2),
        }

    def distribute(self) -> None:
        super().distribute()
        if self.opt_t1 is not None:  # the teachers still train (warm-up): data-parallel too
            for k, fwd in self.teacher_forward.items():
                self.teacher_forward[k] = distributed.wrap_ddp(fwd, self.env)

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def in_warmup(self, epoch: int | None = None) -> bool:
        return (self.epoch if epoch is None else epoch) < self.cfg.psmt_warmup_epochs

    def active(self) -> str:
        if self.in_warmup():
            return "warmup"
        return "t1" if (self.epoch - self.cfg.psmt_warmup_epochs) % 2 == 0 else "t2"

    def on_epoch_start(self) -> None:
        if not self.in_warmup() and self.opt_t1 is not None:
            # Warm-up over: the teachers become EMA-only (official ``del self.optimizer1/2``).
            self.opt_t1 = self.opt_t2 = None
            for t in (self.t1, self.t2):
                for p in t.parameters():
                    p.requires_grad_(False)

    def _vat(self, f: Tensor) -> Tensor:
        """PS-MT ``get_r_adv_t``: adversarial feature noise for the student's features f."""
        c = self.cfg
        x = f.detach()
        size = (self.ds.size, self.ds.size)
        with bn_mode(self.t1, "eval"), bn_mode(self.t2, "eval"):
            with torch.no_grad():
                target = F.softmax((self.t1.decode(x, size) + self.t2.decode(x, size)) / 2, 1)
            d = torch.rand(x.shape, generator=self.gens["vat"]).sub(0.5).to(x.device)
            d = _l2_normalise(d).requires_grad_(True)
            xp = x + c.vat_xi * d
            logit_hat = (self.t1.decode(xp, size) + self.t2.decode(xp, size)) / 2
            adv = F.kl_div(F.log_softmax(logit_hat, 1), target, reduction="batchmean")
            (grad,) = torch.autograd.grad(adv, d)
        return _l2_normalise(grad) * c.vat_eps

    def _student_logits(self, x: Tensor) -> Tensor:
        (logits,) = self.student_forward(x, perturb=self._vat if self.cfg.psmt_vat else None)
        return logits

    def _assist(self, core: Tensor, assist: Tensor) -> Tensor:
        """Keep the off-duty teacher's top-k classes per pixel, fill the rest from the on-duty
        teacher (``assist_mask_calculate``)."""
        k = self.cfg.psmt_assist_topk
        top = assist.topk(k, dim=1).indices
        keep = torch.zeros_like(assist, dtype=torch.bool).scatter_(1, top, True)
        return torch.where(keep, assist, core)

    def train_step(self, i: int) -> dict[str, float]:
        if self.in_warmup():
            return self._warmup_step()
        c = self.cfg
        # strong colour view for the labeled images too ("strong aug for all the supervised
        # images", VocCode/train.py::_train_epoch)
        xl, yl = self.labeled_batch()
        xl = strong_colour(xl, self.gens["aug"])
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        with torch.no_grad(), bn_mode(self.t1, c.teacher_bn), bn_mode(self.t2, c.teacher_bn):
            l1, l2 = self.t1(xu), self.t2(xu)
        on_duty = self.active()
        if c.psmt_assist_topk > 0:
            if on_duty == "t1":
                l2 = self._assist(l1, l2)
            else:
                l1 = self._assist(l2, l1)
        target = c.psmt_gamma * l1 + (1 - c.psmt_gamma) * l2  # logits
        xs = self._norm(strong_colour(xu01, self.gens["aug"]))
        params = self.mixer.draw(xs.shape, self.gens["mix"], label_maps=target.argmax(1))
        m = self.mixer.apply(params, images=xs, probs=target, valid=valid)
        self.set_lr(self.optimizer)
        bl = xl.shape[0]
        logits = self._student_logits(torch.cat([self._norm(xl), m.images]))
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        weight, pseudo = F.softmax(m.probs, 1).max(1)
        keep = (weight >= c.psmt_threshold) & m.valid
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none") * weight
        unsup = masked_mean(ce, keep)
        semi_iter = (self.epoch - c.psmt_warmup_epochs) * c.iters_per_epoch + i
        self.ramp = cosine_rampup(semi_iter, c.psmt_rampup_epochs * c.iters_per_epoch)
        loss = sup + c.psmt_weight * self.ramp * unsup
        self.optimise(self.optimizer, loss)
        ema_update(self.teachers()[on_duty], self.student, c.psmt_ema, buffers=True)
        rate = float(keep.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": unsup.item(),
                "pass_rate": rate}  # fmt: skip

    def _warmup_step(self) -> dict[str, float]:
        """One supervised step for each of T1, T2 (weak view) and the student (strong view),
        each on its own labeled batch (the official warm-up runs a separate pass per net)."""
        self.set_lr(self.optimizer)
        for name, opt in (("t1", self.opt_t1), ("t2", self.opt_t2)):
            assert opt is not None
            xl, yl = self.labeled_batch()
            self.set_lr(opt)
            (logits,) = self.teacher_forward[name](self._norm(xl))
            loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
            self.optimise(opt, loss)
        xl, yl = self.labeled_batch()
        xs = strong_colour(xl, self.gens["aug"])
        (logits,) = self.student_forward(self._norm(xs))
        loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
        self.optimise(self.optimizer, loss)
        return {"loss": loss.item(), "loss_sup": loss.item()}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "opt_t1": None if self.opt_t1 is None else self.opt_t1.state_dict(),
            "opt_t2": None if self.opt_t2 is None else self.opt_t2.state_dict(),
            "ramp": self.ramp,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.ramp = float(state["ramp"])
        if state["opt_t1"] is None:
            self.opt_t1 = self.opt_t2 = None
            for t in (self.t1, self.t2):
                for p in t.parameters():
                    p.requires_grad_(False)
        else:
            assert self.opt_t1 is not None and self.opt_t2 is not None
            self.opt_t1.load_state_dict(state["opt_t1"])
            self.opt_t2.load_state_dict(state["opt_t2"])

"""The doc page of ``mixkit experiment semiseg --write-docs``: ``docs/semiseg.md`` (the
method description in ``DOC_TEMPLATE`` with the results below it) and the teacher-student
distance figure ``docs/semiseg_distance.png``."""

from __future__ import annotations

from pathlib import Path

from mixkit.experiments.semiseg_report import items


def write_doc_page(results: str, path: Path) -> None:
    """``DOC_TEMPLATE`` with the report markdown ``results`` in its Results section."""
    path.write_text(DOC_TEMPLATE.format(results=results))


def save_distance_figure(plan, summaries, cfg, path: Path) -> None:
    """Parameter-distance curves of the first seed at the first split for MT, PS-MT and DT."""
    from mixkit.methods.semiseg.distance import plot_distance_curves

    split = items(cfg.splits)[0]
    seed = int(items(cfg.seeds)[0])
    curves = {}
    for method, label in (("mt", "MT"), ("psmt", "PS-MT"), ("dualteacher", "Dual Teacher")):
        runs = [
            summaries[p["name"]]
            for p in plan
            if p["method"] == method and p["mix"] == "cutmix" and p["split"] == split
            and p["seed"] == seed
        ]  # fmt: skip
        if not runs or not runs[0]["curve"]:
            continue
        curve = runs[0]["curve"]
        for t in [k for k in curve[0] if k != "step"]:
            curves[f"{label} {t}"] = ([p["step"] for p in curve], [p[t] for p in curve])
    if curves:
        plot_distance_curves(
            curves, path, epoch_steps=cfg.iters_per_epoch,
            title=f"teacher-student parameter distance (split {split}, seed {seed})",
        )  # fmt: skip


DOC_TEMPLATE = """# Semi-supervised semantic segmentation

`mixkit semiseg` trains a small segmentation net on digit canvases with a few labeled images
and many unlabeled ones, with four methods:

- **sup**: labeled canvases only.
- **mt**: mean teacher + a mixer. The teacher is an EMA of the student (0.99) and labels
  the weak view. The mixer is applied to the images and the teacher's probability maps with
  the same draw. The loss is CE on confident pixels (≥ 0.95).
- **psmt**: PS-MT. Two teachers take turns, one per epoch, and only the one on duty gets
  the EMA update (0.996). The pseudo-labels are the mean of both teachers on the weak
  view. The loss is a strict confidence-weighted CE (threshold 0.6) with a cosine ramp-up.
  T-VAT on the encoder features is available as `--psmt-vat`.
- **dualteacher**: Dual Teacher. Two temporary teachers switch every epoch, paired with
  CutMix and ClassMix in turn. The active teacher is re-copied from the student at the
  start of its shift by `a = min(1 − 1/(i+1), 0.99)`. There is also an implicit-consistency
  term on the strong colour view (threshold 0.95, weight 0.2). EMA of the BN buffers is
  available as `--dt-ema-buffers`.

The algorithms, their defaults and the official code's quirks were read in the official
repositories `naver-ai/dual-teacher` (at `868e6e7`) and `yyliu01/PS-MT` (at `058cdc3`).
Each claim in the code is cited by file, e.g. `VocCode/train.py::cut_mix` (PS-MT) or
`seg_core/augmentations.py::compute_ic` (Dual Teacher).

## Data and split protocols

`mixkit.methods.semiseg.data.build_seg_dataset` builds each canvas offline and deterministically
from a seed:

- The canvas is 48×48 and holds 1–3 MNIST-5k digits at random positions and scales (19–30
  px). Half the canvases have a plain tinted background. The other half have a crop of a
  scikit-image photo (`skimage.data`).
- Labels: `digit + 1` on the stroke (ink ≥ 0.5), 0 for background, and 255 on the one-pixel
  ring around the strokes (the VOC boundary band).
- Train canvases use only MNIST-5k train digits, and val canvases only test digits, so the
  two sets share no source digit. A test checks this by hashing the digits.

Split files are JSON lists of labeled and unlabeled indices, stamped with the dataset
fingerprint. The runs reference them by path and sha256 in `summary.json`. There are
three protocols:

- `random`: the CPS-style blended lists.
- `hq`: labeled canvases are drawn only from the high-quality subset, i.e. the
  single-digit canvases, whose labels are clean with no occlusion. This mirrors the VOC
  1464 protocol.
- `hq_first`: labeled canvases are taken from the high-quality subset first, then at
  random (PS-MT's "blended, high-quality first" lists).

Fractions are 1/16, 1/8, 1/4, 1/2 and 1.

## Mixers (`mixkit.methods.semiseg.mix`)

A single `MixParams` draw moves the images, the teacher's probability maps or logits, the
integer label maps and the validity masks together. It goes through
`mixkit.augment.apply_images` / `apply_masks`, and the tests check that every pasted pixel
matches across all four. The mixers:

- **CutMix**: one λ ~ Beta(4, 4) per batch, with a per-sample box position and a
  `randperm` partner, as in both official codes. The official code draws box centres in
  `[W/8, W)` and leaves boxes 1 px short. Neither quirk is copied here, and λ is
  recomputed from the box.
- **ClassMix**: the partner's pixels are pasted for half of the classes the teacher
  predicts in it. The default takes `floor(n/2)` classes as Dual Teacher's `get_bin_mask`
  does; the ClassMix paper's `ceil` is available as `--classmix-half ceil`.
- **Multi-box CutMix**: 3 boxes, each of area (1 − λ)/3.
- **FMix**: a low-frequency mask covering exactly (1 − λ)HW pixels.
- **none**: no mixing.

## Deviations from the official code (all deliberate, all at CPU scale)

- **Net**: DeepLab-lite with about 45k parameters. In place of ImageNet pretraining, the
  encoder is pretrained on canvases drawn from scikit-learn's 8×8 digits (a different
  digit source, no MNIST). Decoders start random, as in the official code.
- **PS-MT teachers**: the official teachers start from a different random init than the
  student and get 5 warm-up epochs. At keep rate 0.996 the EMA needs ~1000 steps to forget
  that init, which is more than this whole budget. So here both teachers start as copies of
  the student's initial weights, then warm up for 1 epoch on their own labeled batches. A
  pilot with separately initialised teachers ended with teacher mIoU falling during
  training (13.7 → 8.4) and a student at 27.5 (seed 0, 1/16).
- **Epochs**: an "epoch" is a fixed number of iterations, so every method and split gets
  the same number of student steps. PS-MT's ramp-up is 2 epochs (the official is 12 of 80).
- **Teacher BatchNorm**: teachers predict with batch statistics, as the official codes do
  (they call the teachers in train mode), but without writing their running buffers. An
  inactive teacher therefore stays bit-for-bit frozen.
- **Dual Teacher**:
  - Implicit consistency uses the unlabeled batch's own validity mask. The official
    `label_u` reads the labeled batch's ground truth.
  - CutMix confidence weights come from the mixed confidence maps. The official code uses
    the unmixed ones.
  - The CutMix-shift loss averages over valid pixels. The official code averages over
    pixels with a loss > 0.
  - No horizontal flip (a flipped digit is a different glyph).
- **Colour jitter**: drawn per sample. The official code calls it on a batch tensor, which
  gives one draw per batch. Hue is rotated in YIQ space.

## Results

{results}
![teacher-student distance](semiseg_distance.png)
"""

"""``mixkit semiseg-splits``: write seeded labeled / unlabeled split lists for on-disk data.

    mixkit semiseg-splits --dataset voc --data-root VOCdevkit/VOC2012 --out splits/voc \\
        --fractions 1/16,1/8 --seed 0 --protocol high_quality_first

writes ``OUT/1_16/labeled.txt`` + ``unlabeled.txt`` (one per fraction), ``OUT/val.txt`` when
the root has a val set, and ``OUT/splits.json``; see
:func:`mixkit.methods.semiseg.splits.write_splits`.
"""

from __future__ import annotations

import argparse

from mixkit.methods.semiseg.layouts import DATASETS
from mixkit.methods.semiseg.splits import (
    DEFAULT_FRACTIONS,
    PROTOCOLS,
    WRITE_FORMATS,
    read_split_list,
    write_splits,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "semiseg-splits",
        help="write seeded labeled / unlabeled split lists (UniMatch / PS-MT formats)",
        description="Write seeded labeled / unlabeled split lists for on-disk segmentation data.",
    )
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        help="on-disk layout: voc (VOCdevkit/VOC2012), cityscapes, or folder (images/ + masks/)",
    )
    p.add_argument(
        "--data-root",
        required=True,
        metavar="DIR",
        help="data root; the written paths are relative to it",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder of the lists")
    p.add_argument(
        "--fractions",
        default=",".join(DEFAULT_FRACTIONS),
        metavar="F[,F...]",
        help="comma-separated labeled fractions (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="permutation seed (default %(default)s)")
    p.add_argument(
        "--protocol",
        default="random",
        choices=PROTOCOLS,
        help="random: uniform draw; high_quality: from the high-quality set only "
        "(VOC 1464 fine images); high_quality_first: high-quality images "
        "first, then the rest (PS-MT blender lists) (default %(default)s)",
    )
    p.add_argument(
        "--format",
        default="unimatch",
        choices=WRITE_FORMATS,
        help="line format: unimatch 'IMAGE MASK', psmt '/IMAGE /MASK', ids (VOC "
        "ids) (default %(default)s)",
    )
    p.add_argument(
        "--pool-list",
        default=None,
        metavar="FILE",
        help="take the samples from this split list instead of scanning the root",
    )
    p.add_argument(
        "--high-quality-list",
        default=None,
        metavar="FILE",
        help="split list of the high-quality subset (default for voc: "
        "ImageSets/Segmentation/train.txt)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on error")
    p.set_defaults(func=_cmd_splits)


def _cmd_splits(args: argparse.Namespace) -> int:
    fractions = [f.strip() for f in args.fractions.split(",") if f.strip()]
    source = args.data_root
    if args.pool_list is not None:
        source = read_split_list(args.pool_list, args.dataset, args.data_root)
    hq = None
    if args.high_quality_list is not None:
        hq = [im for im, _ in read_split_list(args.high_quality_list, args.dataset, args.data_root)]
    report = write_splits(
        source,
        args.out,
        fractions,
        seed=args.seed,
        protocol=args.protocol,
        format=args.format,
        dataset=args.dataset,
        high_quality=hq,
    )
    for frac, r in report.items():
        print(
            f"{frac}: {r['num_labeled']} labeled ({r['num_high_quality_labeled']} high-quality), "
            f"{r['num_unlabeled']} unlabeled -> {r['dir']}"
        )
    return 0

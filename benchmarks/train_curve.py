"""Held-out mask AP along a training run: a run's epoch checkpoints scored on the two
held-out sets of benchmarks.train_shapes (the same generator, out of distribution).
It answers whether more epochs would pay, and what a lower learning rate did.

    python -m benchmarks.train_shapes --epochs 32 --fine-epochs 8 --keep-checkpoints 40 --log-dir runs
    python -m benchmarks.train_curve --run runs/shapes20261204T195347 --epochs 16 20 24 28 32 40
    python -m benchmarks.train_curve --run runs/shapes20261204T195347     # every checkpoint kept

Each checkpoint is scored as train_shapes scores its final model (float32,
DETECTION_MIN_CONFIDENCE 0, IMAGE_MAX_DIM --eval-max-dim (192), COCO AP by pycocotools;
the out-of-distribution images also by background texture), about 4-5 minutes per
checkpoint for 200 + 200 images on 2 CPU cores. Report: --output.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from benchmarks import shapes_ood
from benchmarks.common import markdown_table, publish
from benchmarks.train_shapes import EVAL_MAX_DIM, add_eval_max_dim, held_out_sets, score_held_out
from model.training.loop import epoch_checkpoints
from model.weights.checkpoint import load_model

HERE = os.path.dirname(os.path.abspath(__file__))


def score_run(run_dir: str, epochs, count: int, ood_dir: str, max_dim: int = EVAL_MAX_DIM,
              name: str = "shapes") -> list:
    """One row per epoch checkpoint of ``run_dir`` (all kept ones, or those of ``epochs``),
    scored at IMAGE_MAX_DIM ``max_dim``: {"epoch", "learning_rate", "same", "ood" (COCO
    stats), "ood_by_background"}."""
    found = epoch_checkpoints(run_dir, name)
    missing = sorted(set(epochs or ()) - set(found))
    if not found or missing:
        raise FileNotFoundError(f"{run_dir}: no epoch checkpoint of {name!r} for epochs {missing or 'any'} "
                                f"(kept: {sorted(found) or 'none'}; train with --keep-checkpoints to keep more)")
    rows, sets = [], None
    for epoch in sorted(epochs or found):
        model, checkpoint = load_model(found[epoch])
        sets = sets or held_out_sets(count, model.config.IMAGE_SHAPE[0], ood_dir)
        print(f"scoring epoch {epoch} ...", flush=True)
        same, ood, by_background = score_held_out(model, sets, count, max_dim)
        rows.append({"epoch": epoch, "learning_rate": (checkpoint.training or {}).get("learning_rate"),
                     "same": same.mask, "ood": ood.mask, "ood_by_background": by_background})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a training run's folder (its epoch checkpoints)")
    parser.add_argument("--epochs", type=int, nargs="*", help="the epochs to score (default: every kept one)")
    parser.add_argument("--count", type=int, default=200, help="images of each held-out set")
    add_eval_max_dim(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--ood-dir", default=shapes_ood.DEFAULT_DIR, help="the out-of-distribution set's folder")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_curve"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        rows = score_run(args.run, args.epochs, args.count, args.ood_dir, args.eval_max_dim)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    textures = sorted({t for row in rows for t in row["ood_by_background"]})
    table = [[row["epoch"], f"{row['learning_rate']:g}" if row["learning_rate"] else "-",
              f"{row['same']['AP50']:.3f}", f"{row['ood']['AP50']:.3f}", f"{row['ood']['AP']:.3f}"]
             + [f"{row['ood_by_background'][t]['mask']['AP50']:.3f}" if t in row["ood_by_background"] else "-"
                for t in textures] for row in rows]
    body = (f"Run {args.run}: each epoch checkpoint scored on {args.count} held-out standard shapes (same "
            f"generator) and the first {args.count} out-of-distribution images (benchmarks.shapes_ood), mask "
            f"AP at IMAGE_MAX_DIM {args.eval_max_dim}; {torch.get_num_threads()} threads, "
            f"{(time.perf_counter() - started) / 60:.1f} min. The learning rate is the one the epoch trained at.\n\n"
            + markdown_table(["epoch", "lr", "same mask AP50", "OOD mask AP50", "OOD mask AP"]
                             + [f"OOD {t} AP50" for t in textures], table))
    publish(args.output, "Held-out mask AP along a training run", body, {"run": args.run, "count": args.count,
                                                                         "rows": rows},
            f"python -m benchmarks.ood_factors --weights {epoch_checkpoints(args.run, 'shapes')[rows[-1]['epoch']]}"
            "   # what each OOD factor costs the last one")
    return 0


if __name__ == "__main__":
    sys.exit(main())

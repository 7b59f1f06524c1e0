"""What each factor of the out-of-distribution shapes set costs a model: score it on the
full set and on the set with one factor at a time drawn as the standard shapes are.

    python -m benchmarks.ood_factors                                   # benchmarks/artifacts/shapes_r50.pt
    python -m benchmarks.ood_factors --weights run/shapes_0020.pt --count 50 --factors texture tilt
    python -m benchmarks.ood_factors --weights run/shapes_0020.pt --count 200 --factors   # by background only

The sets are benchmarks.shapes_ood's (the same seed, so image k differs between two
sets only in the factor removed; removing "small" or "crowd" draws other shape sizes or
counts, so those sets also differ in where shapes lie). A factor whose removal gains
much mask AP50 is one the model did not learn to handle; the full set is also scored by
background texture (stripes, checkerboard, blotches, gradient), with the shapes found and
the false detections at score >= 0.5 (whether a low AP comes from missed shapes or from
false ones). Evaluation as in benchmarks.train_shapes: float32, DETECTION_MIN_CONFIDENCE
0, IMAGE_MAX_DIM --eval-max-dim (192), COCO AP by pycocotools.
Each set is written once under --sets (kept for the next run); the report goes to
--output.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from benchmarks import shapes_ood
from benchmarks.common import markdown_table, publish
from benchmarks.train_shapes import ARTIFACT, add_eval_max_dim, scoring_config
from model.data.coco import CocoDataset
from model.evaluate import evaluate
from model.weights.checkpoint import load_model

HERE = os.path.dirname(os.path.abspath(__file__))


def score(model, folder: str, count: int, seed: int, without=()) -> dict:
    """COCO mask and box AP of ``model`` on a benchmarks.shapes_ood set written to ``folder``,
    and mask AP and counts of the images of each background texture ("by_background")."""
    dataset = CocoDataset()
    dataset.load_coco(shapes_ood.write_set(folder, count, seed, without), folder)
    dataset.prepare()
    result = evaluate(model, dataset, progress=False)
    by_background = shapes_ood.by_background(dataset, result.results)
    return {"mask": result.mask, "box": result.box, "by_background": by_background}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ood_factors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=ARTIFACT, help="a shapes checkpoint (.pt)")
    parser.add_argument("--count", type=int, default=100, help="images per set")
    parser.add_argument("--seed", type=int, default=7, help="the sets' seed (benchmarks.shapes_ood's default)")
    parser.add_argument("--factors", nargs="*", choices=shapes_ood.FACTORS, default=list(shapes_ood.FACTORS))
    add_eval_max_dim(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--sets", default=os.path.join(HERE, "artifacts", "ood_factors"),
                        help="folder for the generated sets")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "ood_factors"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_model(args.weights)
    model.config = scoring_config(model.config, args.eval_max_dim)
    started = time.perf_counter()
    scores = {"(none)": score(model, os.path.join(args.sets, "full"), args.count, args.seed)}
    for factor in args.factors:
        print(f"scoring without {factor} ...", flush=True)
        scores[factor] = score(model, os.path.join(args.sets, f"without_{factor}"), args.count, args.seed, [factor])
    full = scores["(none)"]["mask"]["AP50"]
    rows = [[name, f"{s['mask']['AP50']:.3f}", f"{s['mask']['AP50'] - full:+.3f}", f"{s['mask']['AP']:.3f}",
             f"{s['mask']['APs']:.3f}", f"{s['box']['AP50']:.3f}"] for name, s in scores.items()]
    body = (f"Model {args.weights}, scored on the first {args.count} images of benchmarks.shapes_ood (seed "
            f"{args.seed}) with the factor named drawn as the standard shapes are, IMAGE_MAX_DIM "
            f"{args.eval_max_dim}; {torch.get_num_threads()} threads, "
            f"{(time.perf_counter() - started) / 60:.1f} min.\n\n"
            + markdown_table(["factor removed", "mask AP50", "gain", "mask AP", "mask APs", "box AP50"], rows)
            + "\n\nThe full set by background texture (benchmarks.shapes_ood.BACKGROUNDS):\n\n"
            + shapes_ood.background_table(scores["(none)"]["by_background"]))
    publish(args.output, "Out-of-distribution shapes: the cost of each factor", body,
            {"weights": args.weights, "count": args.count, "seed": args.seed, "scores": scores},
            "python -m benchmarks.train_shapes --style varied --augment default   # train on more variety")
    return 0


if __name__ == "__main__":
    sys.exit(main())

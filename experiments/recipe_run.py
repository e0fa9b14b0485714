"""One experiment of the course recipe search (docs/course_recipe.md): train, evaluate, log.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/recipe_run.py --name A --size 96 \
        --steps 1000 --micro-batch 4 --union course --init pretrained --eval-at 500,1000

Each evaluation (``--eval-at`` steps) is on the first ``--eval-images`` images of the synthetic
*test* split (seed 0, as notebook 10's ``results_data``) with ``--thresholds`` boundary
thresholds, and appends one JSON line to ``experiments/log.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from ubernet_lite.config import make_config
from ubernet_lite.data import SynthWorld
from ubernet_lite.data.synthetic.views import UNION_TABLES
from ubernet_lite.metrics import evaluate
from ubernet_lite.series.runs import short_run_batch_sizes
from ubernet_lite.training import Trainer
from ubernet_lite.training.pretrain import (
    STATE_FILE,
    PretrainSettings,
    load_trunk_file,
    pretrained_trunk,
)

LOG = Path(__file__).with_name("log.jsonl")
PRIMARY = {
    "semantic": "mIoU", "parts": "mIoU", "detection": "mAP_voc07",
    "semantic_boundaries": "mMF", "saliency": "maxF", "boundaries": "ODS", "normals": "mean",
}  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--bp", type=int, default=4, help="B_p of trunk and tasks (detection: bp-det)")
    ap.add_argument("--bp-det", type=int, default=1)
    ap.add_argument("--union", default="course")
    ap.add_argument("--tasks", default="all")
    ap.add_argument(
        "--shares", default="", help="member=share,... overriding the union's shares (as 'union')"
    )
    ap.add_argument("--init", default="pretrained", help="random | pretrained")
    ap.add_argument("--styles", default="", help="member=style,... overriding the views' styles")
    ap.add_argument("--pre-samples", type=int, default=24000)
    ap.add_argument("--pre-size", type=int, default=None, help="pretraining size (default --size)")
    ap.add_argument("--pre-lr", type=float, default=0.05)
    ap.add_argument("--gamma-normals", type=float, default=None)
    ap.add_argument("--eval-at", default="")
    ap.add_argument("--eval-images", type=int, default=64)
    ap.add_argument("--thresholds", type=int, default=9)
    ap.add_argument("--final-images", type=int, default=None, help="images at the last mark")
    ap.add_argument("--final-thresholds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.shares or a.styles:  # a variant of the union's table, registered under its own name
        table = {k: dict(v) for k, v in UNION_TABLES[a.union].items()}
        for item in filter(None, a.shares.split(",")):
            member, share = item.split("=")
            table[member]["proportion"] = float(share)
        for item in filter(None, a.styles.split(",")):
            member, style = item.split("=")
            table[member]["style"] = style
        a.union = f"{a.union}[{a.shares};{a.styles}]"
        UNION_TABLES[a.union] = table
    gammas = {"normals": a.gamma_normals} if a.gamma_normals else None
    cfg = make_config("lite", tasks=a.tasks, gammas=gammas)
    init = "random"
    t0 = time.time()
    if a.init == "pretrained":
        ps = PretrainSettings(size=a.pre_size or a.size, samples=a.pre_samples, lr=a.pre_lr)
        path = pretrained_trunk(make_config("lite"), ps, progress=False)
        init = "trunk:" + str(path.with_name(STATE_FILE))
        if not path.with_name(STATE_FILE).is_file():
            torch.save(load_trunk_file(path)["trunk"], path.with_name(STATE_FILE))
    pre_s = time.time() - t0
    bs = short_run_batch_sizes(cfg, a.bp)
    if "detection" in bs:
        bs["detection"] = a.bp_det
    tr = Trainer(
        cfg, out=None, steps=a.steps, progress=False, micro_batch=a.micro_batch, lr=a.lr,
        batch_sizes=bs, image_size=a.size, union=a.union, init=init,
    )  # fmt: skip
    marks = sorted({int(x) for x in a.eval_at.split(",") if x} | {a.steps})
    train_s = 0.0
    for m in marks:
        t = time.time()
        tr.run(steps=m)
        train_s += time.time() - t
        t = time.time()
        images, thresholds = a.eval_images, a.thresholds
        if m == a.steps:
            images, thresholds = a.final_images or images, a.final_thresholds or thresholds
        test = Subset(SynthWorld(split="test", size=a.size, seed=0), range(images))
        res = evaluate(tr.model, test, tasks=tr.tasks, num_thresholds=thresholds, progress=False)
        ev_s = time.time() - t
        labelled = {t: sum(1 for r in tr.history if r[t] == r[t]) * a.micro_batch for t in tr.tasks}
        row = dict(
            name=a.name,
            step=m,
            samples=tr.opt.samples_seen,
            train_s=round(train_s, 1),
            eval_s=round(ev_s, 1),
            pretrain_s=round(pre_s, 1),
            args=vars(a),
            eval_images=images,
            thresholds=thresholds,
            labelled_steps_x_mb=labelled,
            primary={t: round(res[t][PRIMARY[t]] * (1 if t == "normals" else 100), 2) for t in res},
            metrics=res,
        )
        print(
            json.dumps({k: row[k] for k in ("name", "step", "samples", "train_s", "primary")}),
            flush=True,
        )
        with LOG.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

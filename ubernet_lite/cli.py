"""Command line: ``python -m ubernet_lite {train,evaluate,predict,memory-bench}``.

```
python -m ubernet_lite train --config lite --tasks all --steps 200 --out runs/demo
python -m ubernet_lite train --resume runs/demo/checkpoint.pt --steps 400      # continue exactly
python -m ubernet_lite evaluate --checkpoint runs/demo/checkpoint.pt --images 20
python -m ubernet_lite predict --checkpoint runs/demo/checkpoint.pt --index 3 --out pred.png
python -m ubernet_lite memory-bench [its own options]

# the paper's real data sets (fetched with data_scripts/, under --data-root or $UBERNET_DATA)
python -m ubernet_lite train --preset paper --data real --data-root ~/data/ubernet \
    --device cuda --steps 20000 --out runs/paper
python -m ubernet_lite evaluate --checkpoint runs/paper/checkpoint.pt --images 0   # all test images
```

``--data real`` trains on the union of the real sets that carry the chosen tasks and evaluates
each task on its test set (``ubernet_lite.data.real.TEST_SETS``); ``evaluate`` and ``predict``
use the data a checkpoint was trained on unless ``--data`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .bench import memory as memory_bench


def _batch_sizes(text: str | None) -> dict[str, int] | None:
    """``"shared=30,detection=2"`` -> ``{"shared": 30, "detection": 2}``."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"--batch-sizes expects name=integer pairs like 'shared=30,detection=2', got {item!r}"
            )
        out[key.strip()] = int(value)
    return out


def _config(name: str, tasks: str, data: str = "synthetic"):
    """The preset's config for ``tasks`` in ``data``'s label space (real: VOC's 20 classes)."""
    from .experiments import make_config

    presets = ("lite", "paper")
    if name not in presets:
        raise SystemExit(f"error: --preset/--config must be one of {list(presets)}, got {name!r}")
    try:
        return make_config(name, tasks=tasks, data=data)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None


def cmd_train(args) -> int:
    from .training.distributed import init_from_env
    from .training.trainer import Trainer

    # under torchrun (WORLD_SIZE > 1): join the process group, one GPU per process
    rank, _, device = init_from_env(args.device)
    common = dict(
        eval_every=args.eval_every,
        eval_images=args.eval_images,
        checkpoint_every=args.checkpoint_every,
        device=device,
        progress=not args.no_progress and rank == 0,
        speedups=False if args.no_speedups else None,
        workers=args.workers,
    )
    if args.resume:
        if args.data_root is not None:
            common["data_root"] = args.data_root
        trainer = Trainer.resume(args.resume, steps=args.steps, **common)
    else:
        if args.out is None:
            raise SystemExit("error: train needs --out FOLDER (or --resume CHECKPOINT)")
        cfg = _config(args.config, args.tasks, args.data)
        trainer = Trainer(
            cfg,
            out=args.out,
            steps=args.steps if args.steps is not None else 100,
            micro_batch=args.micro_batch,
            optimizer=args.optimizer,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            batch_sizes=_batch_sizes(args.batch_sizes),
            schedule=args.schedule,
            memory=args.memory,
            image_size=args.image_size,
            union_length=args.union_length,
            augment=not args.no_augment,
            seed=args.seed,
            data=args.data,
            data_root=args.data_root,
            **common,
        )
    trainer.run()
    if rank != 0:
        return 0
    last = trainer.history[-1] if trainer.history else {}
    print(
        f"trained {trainer.step} steps ({trainer.opt.samples_seen} samples); last loss {last.get('total', float('nan')):.4g}"
    )
    if trainer.out is not None:
        print(
            f"wrote {trainer.out / 'losses.csv'}, {trainer.out / 'loss_curves.png'}, {trainer.out / 'checkpoint.pt'}"
        )
    return 0


def _load_model(checkpoint: str, device: str):
    from .model import UberNet
    from .training.checkpoint import config_from_fingerprint, load_checkpoint

    state = load_checkpoint(checkpoint)
    cfg = config_from_fingerprint(state["config"])
    model = UberNet(cfg).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    size = state["settings"].get("image_size") or cfg.input_size
    return model, cfg, size, state


def _data_of(args, state) -> tuple[str, str | None]:
    """``(data, data_root)``: the command line's, else the checkpoint's training data."""
    settings = state["settings"]
    data = args.data or settings.get("data", "synthetic")
    root = args.data_root if args.data_root is not None else settings.get("data_root")
    return data, root


def cmd_evaluate(args) -> int:
    from torch.utils.data import Subset

    from .data import SynthWorld
    from .metrics import evaluate

    model, cfg, size, state = _load_model(args.checkpoint, args.device)
    tasks = cfg.task_names if args.tasks == "all" else [t.strip() for t in args.tasks.split(",")]
    data, root = _data_of(args, state)
    if data == "real":
        from .training.real_data import check_real_config, evaluate_test_sets, real_test_subsets

        check_real_config(cfg)
        sets = real_test_subsets(cfg, tasks, root, args.images if args.images > 0 else None)
        rows = evaluate_test_sets(
            model, sets, side=size, device=args.device, num_thresholds=args.thresholds
        )
        for task, ds in sets.items():
            print(f"{task:>20}: {len(ds)} images of {ds.dataset.name} {ds.dataset.split}")
    else:
        world = SynthWorld(split=args.split or "val", size=size, seed=args.seed)
        n = min(args.images, len(world)) if args.images > 0 else len(world)
        rows = evaluate(
            model,
            Subset(world, range(n)),
            tasks=tasks,
            device=args.device,
            num_thresholds=args.thresholds,
            progress=False,
        )
    for task, cols in rows.items():
        print(f"{task:>20}  " + "  ".join(f"{k}={v:.4f}" for k, v in cols.items()))
    return 0


def prediction_figure(image, out: dict, cfg):
    """A figure of the image and every task's prediction (one panel per task).

    Args:
        image: float [3, H, W] in [0, 1].
        out: eval-mode output of the model for a batch of one (``out[name][0]``).
    """
    import matplotlib.pyplot as plt
    import torch

    names = cfg.task_names
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(2.4 * (len(names) + 1), 2.6))
    axes[0].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_title("image")
    for ax, name in zip(axes[1:], names, strict=True):
        spec, pred = cfg.task(name), out[name]
        if spec.kind == "detection":
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
            det = pred[0]
            for box, score in zip(det["boxes"][:10], det["scores"][:10], strict=False):
                x0, y0, x1, y1 = box.tolist()
                ax.add_patch(
                    plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1)
                )
                ax.text(x0, y0, f"{float(score):.2f}", color="yellow", fontsize=6)
        elif spec.kind == "regression":
            n = torch.nn.functional.normalize(pred[0], dim=0)
            ax.imshow(((n + 1) / 2).permute(1, 2, 0).numpy())
        elif spec.kind == "multiclass":
            k = spec.out_channels
            ax.imshow(
                pred[0].argmax(0).numpy(),
                cmap="tab10" if k <= 10 else "tab20",
                vmin=0,
                vmax=9 if k <= 10 else 19,
                interpolation="nearest",
            )
        else:  # binary / multilabel: the largest probability
            ax.imshow(torch.sigmoid(pred[0]).amax(0).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def cmd_predict(args) -> int:
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data import SynthWorld, load_dataset

    model, cfg, size, state = _load_model(args.checkpoint, args.device)
    data, root = _data_of(args, state)
    if data == "real":
        from .data.real import TEST_SETS
        from .training.real_data import ShortestSidePredictor

        name = args.dataset or TEST_SETS["detection"].name
        split = args.split or next((t.split for t in TEST_SETS.values() if t.name == name), None)
        images = load_dataset(name, root, split)
        label = f"{name}_{images.split}"
        model = ShortestSidePredictor(model, size)  # the image at its own size
    else:
        images = SynthWorld(split=args.split or "val", size=size, seed=args.seed)
        label = args.split or "val"
    if not 0 <= args.index < len(images):
        raise SystemExit(f"error: --index must be in [0, {len(images)}) for the {label} split")
    image = images[args.index]["image"]
    with torch.no_grad():
        out = model(image[None].to(args.device))
    fig = prediction_figure(
        image, {k: (v.cpu() if hasattr(v, "cpu") else v) for k, v in out.items()}, cfg
    )
    path = Path(args.out or f"prediction_{label}_{args.index}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return 0


def cmd_memory_bench(rest: list[str]) -> int:
    """``memory-bench``: the benchmark of :mod:`ubernet_lite.bench.memory` with its own options."""
    return memory_bench.main(rest) or 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ubernet_lite",
        description="UberNet-lite: train, evaluate, predict, memory-bench.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="multi-task training on the synthetic or the real union (async SGD)"
    )
    t.add_argument("--preset", "--config", dest="config", default="lite", help="lite or paper")
    t.add_argument("--tasks", default="all", help="comma-separated task names or 'all'")
    t.add_argument(
        "--steps", type=int, default=None, help="micro-batches to train for (default 100)"
    )
    t.add_argument("--out", default=None, help="output folder (CSV, plot, checkpoint)")
    t.add_argument("--resume", default=None, help="continue from this checkpoint.pt")
    t.add_argument("--micro-batch", type=int, default=2)
    t.add_argument("--optimizer", choices=["async", "sync"], default="async")
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--batch-sizes", default=None, help="B_p overrides, e.g. shared=30,detection=2")
    t.add_argument("--schedule", choices=["poly", "constant"], default="poly")
    t.add_argument("--memory", default="standard", help="backward: standard or low")
    t.add_argument("--image-size", type=int, default=None)
    t.add_argument("--union-length", type=int, default=1000)
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, default=0)
    t.add_argument("--eval-images", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=50)
    t.add_argument("--device", default="cpu")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader worker processes (default 4 on CUDA, 0 = one prefetching thread on CPU)",
    )
    t.add_argument(
        "--no-speedups",
        action="store_true",
        help="CUDA runs: no bf16 autocast, channels_last, cudnn.benchmark or TF32 (on by default)",
    )
    t.add_argument(
        "--data",
        choices=["synthetic", "real"],
        default="synthetic",
        help="the synthetic union, or the paper's real data sets (fetched with data_scripts/)",
    )
    t.add_argument(
        "--data-root",
        default=None,
        help="root of the real data sets (default $UBERNET_DATA, else ~/data/ubernet)",
    )

    for name, helptext in (
        ("evaluate", "metrics on the synthetic val split or each task's real test set"),
        ("predict", "PNG of one image's outputs"),
    ):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("--checkpoint", required=True)
        e.add_argument("--split", default=None, help="synthetic split (default val)")
        e.add_argument("--seed", type=int, default=0)
        e.add_argument("--device", default="cpu")
        e.add_argument(
            "--data",
            choices=["synthetic", "real"],
            default=None,
            help="default: the data the checkpoint was trained on",
        )
        e.add_argument("--data-root", default=None, help="root of the real data sets")
        if name == "evaluate":
            e.add_argument(
                "--images", type=int, default=20, help="images per task (0 = the whole set)"
            )
            e.add_argument("--tasks", default="all")
            e.add_argument(
                "--thresholds", type=int, default=99, help="boundary thresholds (99 = final)"
            )
        else:
            e.add_argument("--index", type=int, default=0)
            e.add_argument(
                "--dataset",
                default=None,
                help="real data: a data set name of load_dataset (default voc2007, its test split)",
            )
            e.add_argument(
                "--out", default=None, help="PNG path (default prediction_<split>_<index>.png)"
            )

    sub.add_parser(
        "memory-bench", help="peak memory of the backward modes (Sec. 4)", add_help=False
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "memory-bench":
        return cmd_memory_bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        return cmd_predict(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise SystemExit(f"error: {msg}") from None

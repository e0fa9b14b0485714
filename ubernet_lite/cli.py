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

Every error a user can cause (a bad value, a missing or corrupted file, a device that is not
there) ends as one line on stderr and exit status 2; ``--debug`` (anywhere on the line) also
prints the trace. Ctrl-C or SIGTERM during ``train`` writes a checkpoint at the current step and
prints the command that resumes (exit status 130 / 143).

``--data real`` trains on the union of the real sets that carry the chosen tasks and evaluates
each task on its test set (``ubernet_lite.data.real.TEST_SETS``); ``evaluate`` and ``predict``
use the data a checkpoint was trained on unless ``--data`` says otherwise.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch
from torch.utils.data import Subset

from .bench import memory as memory_bench
from .config import make_config
from .data import SynthWorld, load_dataset
from .data.real import TEST_SETS
from .metrics import evaluate
from .model import UberNet
from .tasks import TASKS
from .training.checkpoint import (
    config_fingerprint,
    config_from_fingerprint,
    load_checkpoint,
)
from .training.distributed import init_from_env
from .training.init import INITS
from .training.real_data import (
    ShortestSidePredictor,
    check_real_config,
    evaluate_test_sets,
    real_test_subsets,
)
from .training.safety import NonFiniteError, TrainingInterrupted
from .training.trainer import Trainer


class CliError(SystemExit):
    """A user's error: exit status 2; ``str()`` is the one-line message (printed by main)."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


#: Exceptions a user can cause through the CLI (bad values, files, data, devices): one line.
USER_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    OSError,
    NotImplementedError,
    NonFiniteError,
    torch.cuda.OutOfMemoryError,
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value is one line (``CliError``), not usage text and a message."""

    def error(self, message: str):
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _float_in(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = True):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {lo}{low:g}, {high:g}{hi}, got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


def _batch_sizes(text: str | None) -> dict[str, int] | None:
    """``"shared=30,detection=2"`` -> ``{"shared": 30, "detection": 2}`` (names: ``shared`` or a
    task; values integers >= 1), checked as it is parsed."""
    if not text:
        return None
    out = {}
    names = ["shared", *TASKS]
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not value.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"expects name=integer pairs like 'shared=30,detection=2', got {item!r}"
            )
        if key not in names:
            raise argparse.ArgumentTypeError(
                f"unknown group {key!r} in {item!r}; names are {names}"
            )
        if int(value) < 1:
            raise argparse.ArgumentTypeError(
                f"batch_sizes[{key!r}] must be an integer >= 1 (B_p), got {int(value)}"
            )
        out[key] = int(value)
    return out


def _tasks(text: str) -> str:
    """``all`` or comma-separated task names, each known."""
    if text.strip() == "all":
        return "all"
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown task {(unknown or [text])[0]!r}; expected 'all' or names from {list(TASKS)}"
        )
    return ",".join(names)


def _device(text: str) -> str:
    """A torch device that exists here: ``cpu``, ``cuda`` / ``cuda:N`` with a GPU, ``mps``."""
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}; use cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                "use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available here; use cpu")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"unsupported device {text!r}; use cpu, cuda or mps")
    return text


def _checkpoint_file(text: str) -> str:
    """An existing, non-empty file (what is in it is checked by ``load_checkpoint``)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no checkpoint at {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file (a checkpoint.pt is)")
    if path.stat().st_size == 0:
        raise argparse.ArgumentTypeError(f"checkpoint {text} is empty (0 bytes)")
    return text


def _out_folder(text: str) -> str:
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def _out_png(text: str) -> str:
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name like pred.png")
    return text


def _config(name: str, tasks: str, data: str = "synthetic"):
    """The preset's config for ``tasks`` in ``data``'s label space (real: VOC's 20 classes)."""
    return make_config(name, tasks=tasks, data=data)


#: train's options that define a run (TrainSettings fields) and their defaults for a new run.
#: The parser leaves them None, so that ``--resume`` can tell what was asked for.
SETTING_DEFAULTS = dict(
    tasks="all", micro_batch=2, optimizer="async", lr=0.01, momentum=0.9, weight_decay=5e-4,
    batch_sizes=None, schedule="poly", memory="standard", image_size=None, union_length=1000,
    augment=True, seed=0, data="synthetic", init="random",
)  # fmt: skip


def _given_settings(args) -> dict:
    """The run-defining settings given on the command line (not left at their default)."""
    given = {k: getattr(args, k) for k in SETTING_DEFAULTS if k != "augment"}
    given["augment"] = None if args.no_augment is None else not args.no_augment
    return {k: v for k, v in given.items() if v is not None}


def cmd_train(args) -> int:
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
    given = _given_settings(args)
    if args.resume:
        if args.data_root is not None:
            common["data_root"] = args.data_root
        if args.out is not None:
            common["out"] = args.out
        if args.config is not None:
            _check_preset(args, given)
        trainer = Trainer.resume(args.resume, steps=args.steps, settings=given, **common)
        print(
            f"resuming {args.resume} at step {trainer.step} of {trainer.steps}; writing to "
            f"{trainer.out}" + (f"; device {args.device}" if args.device != "cpu" else "")
        )
    else:
        if args.out is None:
            raise CliError("train needs --out FOLDER (or --resume CHECKPOINT)")
        settings = {**SETTING_DEFAULTS, **given}
        cfg = _config(args.config or "lite", settings["tasks"], settings["data"])
        trainer = Trainer(
            cfg,
            out=args.out,
            steps=args.steps if args.steps is not None else 100,
            data_root=args.data_root,
            **settings,
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


def _check_preset(args, given: dict) -> None:
    """``--preset`` with ``--resume``: an error unless it builds the checkpoint's config."""
    state = load_checkpoint(args.resume)
    saved = state["settings"]
    tasks = given.get("tasks", saved.get("tasks", "all"))
    tasks = ",".join(tasks) if isinstance(tasks, list) else tasks
    cfg = _config(args.config, tasks, given.get("data", saved.get("data", "synthetic")))
    if config_fingerprint(cfg) != state["config"]:
        raise CliError(
            f"--preset {args.config} differs from the config checkpoint {args.resume} was trained "
            "with; drop --preset to continue that run"
        )


def _load_model(checkpoint: str, device: str):
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
    model, cfg, size, state = _load_model(args.checkpoint, args.device)
    tasks = cfg.task_names if args.tasks == "all" else [t.strip() for t in args.tasks.split(",")]
    data, root = _data_of(args, state)
    if data == "real":
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
    matplotlib.use("Agg")
    model, cfg, size, state = _load_model(args.checkpoint, args.device)
    data, root = _data_of(args, state)
    if data == "real":
        name = args.dataset or TEST_SETS["detection"].name
        split = args.split or next((t.split for t in TEST_SETS.values() if t.name == name), None)
        images = load_dataset(name, root, split)
        label = f"{name}_{images.split}"
        model = ShortestSidePredictor(model, size)  # the image at its own size
    else:
        images = SynthWorld(split=args.split or "val", size=size, seed=args.seed)
        label = args.split or "val"
    if not 0 <= args.index < len(images):
        raise CliError(f"--index must be in [0, {len(images)}) for the {label} split")
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
    p = _Parser(
        prog="python -m ubernet_lite",
        description="UberNet-lite: train, evaluate, predict, memory-bench. "
        "--debug (anywhere) prints the trace of an error.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    nonneg, positive = _int_at_least(0), _int_at_least(1)

    t = sub.add_parser(
        "train", help="multi-task training on the synthetic or the real union (async SGD)"
    )
    t.add_argument(
        "--preset", "--config", dest="config", default=None, choices=["lite", "paper"],
        help="lite (default) or paper",
    )  # fmt: skip
    t.add_argument("--tasks", type=_tasks, default=None, help="comma-separated task names or 'all'")
    t.add_argument(
        "--steps", type=nonneg, default=None, help="micro-batches to train for (default 100)"
    )
    t.add_argument(
        "--out", type=_out_folder, default=None, help="output folder (CSV, plot, checkpoint)"
    )
    t.add_argument(
        "--resume", type=_checkpoint_file, default=None,
        help="continue from this checkpoint.pt (with --out: write there; the source is kept)",
    )  # fmt: skip
    t.add_argument("--micro-batch", type=positive, default=None, help="default 2")
    t.add_argument("--optimizer", choices=["async", "sync"], default=None, help="default async")
    t.add_argument("--lr", type=_float_in(0, low_open=True), default=None, help="default 0.01")
    t.add_argument("--momentum", type=_float_in(0, 1), default=None, help="default 0.9")
    t.add_argument("--weight-decay", type=_float_in(0), default=None, help="default 5e-4")
    t.add_argument(
        "--batch-sizes", type=_batch_sizes, default=None,
        help="B_p overrides, e.g. shared=30,detection=2",
    )  # fmt: skip
    t.add_argument("--schedule", choices=["poly", "constant"], default=None, help="default poly")
    t.add_argument(
        "--memory", choices=["standard", "low"], default=None, help="backward (default standard)"
    )
    t.add_argument(
        "--image-size", type=positive, default=None, help="training crop side (default: preset's)"
    )
    t.add_argument("--union-length", type=positive, default=None, help="default 1000")
    t.add_argument("--no-augment", action="store_const", const=True, default=None)
    t.add_argument("--seed", type=nonneg, default=None, help="default 0")
    t.add_argument(
        "--init",
        choices=INITS,
        default=None,
        help="trunk initialisation (default random; imagenet: VGG-16 from torchvision's cache)",
    )
    t.add_argument("--eval-every", type=nonneg, default=0)
    t.add_argument("--eval-images", type=nonneg, default=0)
    t.add_argument("--checkpoint-every", type=nonneg, default=50)
    t.add_argument("--device", type=_device, default="cpu")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument(
        "--workers",
        type=nonneg,
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
        default=None,
        help="the synthetic union (default), or the paper's real data sets (fetched with "
        "data_scripts/)",
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
        e.add_argument("--checkpoint", type=_checkpoint_file, required=True)
        e.add_argument("--split", default=None, help="synthetic split (default val)")
        e.add_argument("--seed", type=nonneg, default=0)
        e.add_argument("--device", type=_device, default="cpu")
        e.add_argument(
            "--data",
            choices=["synthetic", "real"],
            default=None,
            help="default: the data the checkpoint was trained on",
        )
        e.add_argument("--data-root", default=None, help="root of the real data sets")
        if name == "evaluate":
            e.add_argument(
                "--images", type=nonneg, default=20, help="images per task (0 = the whole set)"
            )
            e.add_argument("--tasks", type=_tasks, default="all")
            e.add_argument(
                "--thresholds", type=positive, default=99, help="boundary thresholds (99 = final)"
            )
        else:
            e.add_argument("--index", type=nonneg, default=0)
            e.add_argument(
                "--dataset",
                default=None,
                help="real data: a data set name of load_dataset (default voc2007, its test split)",
            )
            e.add_argument(
                "--out", type=_out_png, default=None,
                help="PNG path (default prediction_<split>_<index>.png)",
            )  # fmt: skip

    sub.add_parser(
        "memory-bench", help="peak memory of the backward modes (Sec. 4)", add_help=False
    )
    return p


def _fail(message: str, debug: bool) -> CliError:
    """Print the one line (and the trace with ``--debug``); the exception to raise."""
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return CliError(message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        if argv and argv[0] == "memory-bench":
            return cmd_memory_bench(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        return cmd_predict(args)
    except CliError as e:
        raise _fail(str(e), debug) from None
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr, flush=True)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, OSError) and not isinstance(e.args[0] if e.args else None, str):
            msg = f"{e.strerror or type(e).__name__}: {e.filename or ''}".strip()
        raise _fail(" ".join(str(msg).split()), debug) from None
    except Exception as e:  # a bug, not a user's error: still one line unless --debug
        if debug:
            raise
        print(
            f"internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]} "
            "(rerun with --debug for the trace, and please report it)",
            file=sys.stderr,
        )
        return 1

"""The trainer's checkpoint: its format, atomic writing, and what a resume must match.

A checkpoint (``checkpoint.pt``) holds the bytes of one ``torch.save`` state dict and their sha256
(:func:`save_checkpoint`; written atomically, checked by :func:`load_checkpoint`). The state,
format ``"ubernet_lite.Trainer/1"``::

    format    "ubernet_lite.Trainer/1"
    config    config_fingerprint(cfg): the UberNetConfig as JSON-able dict (tasks included)
    settings  dataclasses.asdict(TrainSettings)
    steps     the run's length (the poly schedule spans it);  step: steps done
    model     model.state_dict()
    optimizer AsyncSGD / SyncSGD state (every group's accumulator, counter, momentum)
    stream    the sampler position of the consumed micro-batches: {"epoch", "offset"}
    rng       the torch / numpy / python global RNG states and the CUDA devices' (or None)
    world_size  the number of processes the run was trained on (1 without torch.distributed)
    ranks     (world_size > 1) per rank: its RNG states and its local optimiser accumulators
    history   per-step log rows;  evals: evaluation rows

Data are a pure function of ``(seed, epoch, index)``, so with this state a run stopped and
resumed ends with the same parameters as one that ran through.

Resume compatibility: a checkpoint loads into a trainer only with the same config and the same
settings (:func:`check_compatible`); a setting added after the checkpoint was written gets its
default, and location settings (``data_root``) are not compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..config import UberNetConfig
from ..tasks import TaskSpec
from .accel import cuda_rng_states, set_cuda_rng_states
from .settings import LOCATION_SETTINGS, TrainSettings

#: The checkpoint's file name in a run's output folder.
CHECKPOINT = "checkpoint.pt"
#: The ``format`` entry of every trainer checkpoint's state.
FORMAT = "ubernet_lite.Trainer/1"
#: The ``format`` of the file around it: the state's bytes and their sha256 (see save_checkpoint).
FILE_FORMAT = "ubernet_lite.Checkpoint/sha256"
#: The pickle protocol of that file: 4 stores the payload's bytes as they are, where torch.save's
#: default 2 turns them into a latin-1 string (a 868 MiB paper-preset state became a 1.17 GB
#: file, written in about twice the time); any torch reads both.
PAYLOAD_PROTOCOL = 4


def config_fingerprint(cfg: UberNetConfig) -> dict:
    """A JSON-able description of a config (tasks included), to match checkpoints to runs."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_from_fingerprint(fp: dict) -> UberNetConfig:
    """Rebuild an :class:`UberNetConfig` from :func:`config_fingerprint`'s dict."""
    kw = dict(fp)
    kw["tasks"] = [TaskSpec(**t) for t in fp["tasks"]]
    for f in dataclasses.fields(UberNetConfig):
        if isinstance(getattr(UberNetConfig, f.name, None), tuple) or f.name in (
            "pyramid_scales", "anchor_sizes", "anchor_ratios",
        ):  # fmt: skip
            if isinstance(kw.get(f.name), list):
                kw[f.name] = tuple(kw[f.name])
    return UberNetConfig(**kw)


def rng_state() -> dict:
    """The torch, numpy and python global RNG states, and every CUDA device's (None if unused)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": cuda_rng_states(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    set_cuda_rng_states(state.get("cuda"))  # absent in checkpoints older than the entry


def comparable_settings(settings: dict) -> dict:
    """The settings that define a run, for comparing a checkpoint with a trainer: absent fields
    (a checkpoint older than the field) get their default, location fields are left out."""
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(TrainSettings)
        if f.default is not dataclasses.MISSING
    }
    out = {**defaults, **settings}
    for key in LOCATION_SETTINGS:
        out.pop(key, None)
    return out


def _diff(a: dict, b: dict) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_compatible(
    state: dict, cfg: UberNetConfig, settings: TrainSettings, path: str | os.PathLike
) -> None:
    """Raise a clear error unless checkpoint ``state`` is of a run with ``cfg`` and ``settings``."""
    theirs, mine = state["config"], config_fingerprint(cfg)
    if theirs != mine:
        raise ValueError(
            f"checkpoint {path} is from another config (differs in {_diff(theirs, mine)}); "
            "build the Trainer with the checkpoint's config, e.g. Trainer.resume(path)"
        )
    theirs_s = comparable_settings(state["settings"])
    mine_s = comparable_settings(dataclasses.asdict(settings))
    if theirs_s != mine_s:
        raise ValueError(
            f"checkpoint {path} was trained with other settings (differs in "
            f"{_diff(theirs_s, mine_s)}); use Trainer.resume(path) to keep them"
        )


class CheckpointError(ValueError):
    """A checkpoint file that is empty, truncated, corrupted (its checksum fails) or foreign."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` with a checksum of its payload, atomically: a temporary file
    in the same folder, flushed and fsynced, then renamed over ``path`` (and the folder fsynced),
    so a crash at any moment leaves either the old checkpoint or the new one, never half of one.

    File layout (one ``torch.save``, pickle protocol :data:`PAYLOAD_PROTOCOL`): ``{"format":
    FILE_FORMAT, "sha256": hex digest of payload, "payload": bytes}`` where ``payload`` is
    ``torch.save(state)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(
                {"format": FILE_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                 "payload": payload},
                f,
                pickle_protocol=PAYLOAD_PROTOCOL,
            )  # fmt: skip
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some platforms): the rename stands
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a trainer checkpoint; every failing check is one :class:`CheckpointError` line
    (empty, truncated or not a torch file; not a trainer checkpoint; checksum mismatch), and a
    missing file a ``FileNotFoundError``. Checkpoints of the older format (no checksum) load."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; expected a file written by Trainer.save()"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); use another checkpoint")
    try:
        outer = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises RuntimeError, pickle errors, EOFError, ...
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated, corrupted or not a torch file "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        ) from None
    if isinstance(outer, dict) and outer.get("format") == FILE_FORMAT:
        payload, want = outer.get("payload"), outer.get("sha256")
        if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != want:
            raise CheckpointError(
                f"checkpoint {path} is corrupted: its payload does not match its sha256 checksum; "
                "use another checkpoint (e.g. an earlier copy)"
            )
        try:
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {path}: payload unreadable ({type(e).__name__})"
            ) from None
    else:
        state = outer  # the format before checksums
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ubernet_lite Trainer checkpoint")
    missing = [k for k in ("config", "settings", "steps", "step", "model") if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} misses {missing}; it is not a complete one")
    return state

"""What keeps a training run from losing work: signals, non-finite numbers, the output folder.

- :class:`StopOnSignal`: during :meth:`Trainer.run`, SIGINT (Ctrl-C) and SIGTERM ask the loop to
  stop after the current step; the trainer then writes its checkpoint at that step and raises
  :class:`TrainingInterrupted` with the one command that resumes. A second signal aborts at once.
- :func:`check_finite`: a non-finite loss, gradient or learning rate stops the run
  (:class:`NonFiniteError`, naming the step and the task) before the optimiser applies it, so the
  last checkpoint written stays the last good one.
- :func:`prepare_out_folder`: the output folder is created and checked for writing before the
  first step, not at the final save after the whole run has trained.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from pathlib import Path

import torch

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT / SIGTERM after its checkpoint was written.

    Attributes: ``signum``, ``step``, ``checkpoint`` (the file written, or None without ``out``),
    ``command`` (the one command line that resumes, or None)."""

    def __init__(self, message: str, signum: int, step: int, checkpoint, command):
        super().__init__(message)
        self.signum, self.step, self.checkpoint, self.command = signum, step, checkpoint, command

    def __str__(self) -> str:
        return str(self.args[0])


class NonFiniteError(FloatingPointError):
    """A non-finite loss, gradient or learning rate; the run stopped before applying it."""


class StopOnSignal:
    """Context manager: SIGINT / SIGTERM set :attr:`signum` (the loop stops after its step);
    a second signal raises ``KeyboardInterrupt`` at once. Outside the main thread (where Python
    cannot install handlers) it does nothing. The previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{SIGNAL_NAMES.get(signum, signum)}: stopping after this step and writing a "
            "checkpoint (send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_NAMES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def check_finite(step: int, losses: dict, total: float, lr: float, params) -> None:
    """Raise :class:`NonFiniteError` if step ``step``'s loss (per task), learning rate or
    gradients (of ``params``, summed over the micro-batch) are not finite."""
    if not math.isfinite(lr):
        raise NonFiniteError(f"step {step}: the learning rate is {lr} (all tasks)")
    bad = [t for t, v in losses.items() if not math.isfinite(float(v))]
    if bad or not math.isfinite(float(total)):
        what = ", ".join(f"{t} = {float(losses[t])}" for t in bad) or f"total = {float(total)}"
        raise NonFiniteError(f"step {step}: non-finite loss of task(s) {what}")
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())):
        raise NonFiniteError(f"step {step}: non-finite gradient (losses {dict(losses)})")


def prepare_out_folder(out: str | os.PathLike) -> Path:
    """Create ``out`` and check that files can be written in it; a clear ``OSError`` if not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(
            f"cannot write in the output folder {out} ({e.strerror or e}); choose another --out"
        ) from None
    return out

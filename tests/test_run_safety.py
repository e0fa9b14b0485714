"""Training runs that lose nothing: signals, checkpoints, resumes, non-finite numbers, the CLI.

The signal tests run training in a subprocess (signals need a process of their own); the child
prints each finished step, so the parent interrupts at a known point and not by timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ubernet_lite as ul
from ubernet_lite.cli import main
from ubernet_lite.training import backward
from ubernet_lite.training.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from ubernet_lite.training.safety import NonFiniteError
from ubernet_lite.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TASKS = ["semantic", "normals"]
SETTINGS = dict(
    tasks=TASKS, image_size=64, micro_batch=2, union_length=40,
    batch_sizes={"shared": 3, "semantic": 2, "normals": 2},
)  # fmt: skip


def cfg():
    return ul.config.UberNetConfig.lite(
        tasks=TASKS, width=1 / 16, fc_channels=32, pyramid_scales=(1.0, 0.5)
    )


def make(out, steps=6, **kw):
    return Trainer(cfg(), out=out, steps=steps, progress=False, **SETTINGS, **kw)


# ----------------------------------------------------------------------------------------------
# SIGINT / SIGTERM to a training subprocess, then resume: bit-identical to a straight run
# ----------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    import ubernet_lite as ul
    from ubernet_lite.training.trainer import Trainer

    mode, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    step = Trainer.train_step

    def train_step(self):  # say when each step is done, so that the parent can interrupt
        row = step(self)
        print(f"step {self.step}", flush=True)
        return row

    Trainer.train_step = train_step
    if mode == "cli":
        from ubernet_lite.cli import main
        sys.exit(main(sys.argv[4:]))
    cfg = ul.config.UberNetConfig.lite(
        tasks=["semantic", "normals"], width=1 / 16, fc_channels=32, pyramid_scales=(1.0, 0.5)
    )
    settings = dict(
        tasks=["semantic", "normals"], image_size=64, micro_batch=2, union_length=40,
        batch_sizes={"shared": 3, "semantic": 2, "normals": 2},
    )
    if mode == "resume":
        t = Trainer.resume(out + "/checkpoint.pt", progress=False)
    else:
        t = Trainer(cfg, out=out, steps=steps, progress=False, checkpoint_every=0, **settings)
    try:
        t.run()
    except KeyboardInterrupt as e:
        print(e, file=sys.stderr, flush=True)
        sys.exit(130)
    """
)


def _child(tmp_path, *args, stop_after=None, sig=signal.SIGINT):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    p = subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines = []
    for line in p.stdout:
        lines.append(line.strip())
        if stop_after is not None and line.strip() == f"step {stop_after}":
            p.send_signal(sig)
    err = p.stderr.read()
    return p.wait(timeout=300), lines, err


def _params(path):
    return load_checkpoint(path)["model"]


def test_sigint_checkpoints_and_resume_is_bit_identical(tmp_path):
    rc, lines, err = _child(tmp_path, "straight", tmp_path / "a", 7)
    assert rc == 0, err
    rc, lines, err = _child(tmp_path, "run", tmp_path / "b", 7, stop_after=3)
    assert rc == 130, err
    stopped_at = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"]
    assert 3 <= stopped_at < 7 and lines[-1] == f"step {stopped_at}"  # no step lost
    msg = [ln for ln in err.splitlines() if "resume with:" in ln]
    assert len(msg) == 1 and f"step {stopped_at} of 7" in msg[0] and "Traceback" not in err
    assert f"python -m ubernet_lite train --resume {tmp_path / 'b' / 'checkpoint.pt'}" in msg[0]
    rc, lines, err = _child(tmp_path, "resume", tmp_path / "b", 7)
    assert rc == 0, err
    assert lines[0] == f"step {stopped_at + 1}" and lines[-1] == "step 7"
    a, b = _params(tmp_path / "a" / "checkpoint.pt"), _params(tmp_path / "b" / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_through_the_cli_prints_the_resume_command(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--tasks", "semantic,normals", "--image-size", "64", "--union-length", "40"]
    argv += ["--steps", "20", "--out", str(out), "--no-progress", "--checkpoint-every", "0"]
    rc, lines, err = _child(tmp_path, "cli", out, 0, *argv, stop_after=1, sig=signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "resume with:" in ln]
    command = line.split("resume with: ")[1]
    assert command.startswith(f"python -m ubernet_lite train --resume {out / 'checkpoint.pt'}")
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == int(lines[-1].split()[1]) >= 1 and (out / "losses.csv").is_file()


# ----------------------------------------------------------------------------------------------
# Checkpoints: checksum, atomic writing, one-line errors
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    make(out, steps=1).run()
    return out / "checkpoint.pt"


def _one_line_checkpoint_error(path):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    return str(e.value)


def test_corrupted_checkpoints_are_one_line_errors(ckpt, tmp_path):
    data = ckpt.read_bytes()
    good = load_checkpoint(ckpt)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"")
    assert "empty" in _one_line_checkpoint_error(bad)
    for cut in (10, len(data) // 2, len(data) - 10):
        bad.write_bytes(data[:cut])
        _one_line_checkpoint_error(bad)
    bad.write_bytes(b"not a checkpoint at all\n")
    _one_line_checkpoint_error(bad)
    torch.save({"weights": torch.zeros(3)}, bad)
    assert "not an ubernet_lite Trainer checkpoint" in _one_line_checkpoint_error(bad)
    # one byte changed anywhere: an error, or (a byte the zip container ignores) the same state
    errors = 0
    for pos in range(0, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            state = load_checkpoint(bad)
        except CheckpointError as e:
            assert "\n" not in str(e)
            errors += 1
            continue
        assert all(torch.equal(state["model"][k], good["model"][k]) for k in good["model"])
    assert errors >= 30  # nearly all of the file is payload: its sha256 catches the change
    # the CLI says the same in one line, exit status 2
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1  # one bit, in the middle of the weights
    bad.write_bytes(bytes(flipped))
    assert "sha256" in _one_line_checkpoint_error(bad)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--checkpoint", str(bad), "--images", "1"])
    assert e.value.code == 2


def test_checkpoint_payload_checksum(ckpt, tmp_path):
    outer = torch.load(ckpt, weights_only=False)
    payload = bytearray(outer["payload"])
    payload[len(payload) // 2] ^= 1
    outer["payload"] = bytes(payload)  # a consistent zip around a changed payload
    torch.save(outer, tmp_path / "x.pt")
    assert "sha256" in _one_line_checkpoint_error(tmp_path / "x.pt")


def test_checkpoint_file_holds_the_payload_bytes_as_they_are(ckpt, tmp_path):
    # random bytes: about half are >= 128, which protocol 2 would store as 2-byte characters
    state = load_checkpoint(ckpt)
    assert state["format"] == FORMAT
    state["model"]["noise"] = torch.randint(0, 256, (2**20,), dtype=torch.uint8)
    path = save_checkpoint(state, tmp_path / "c.pt")
    payload = torch.load(path, weights_only=False)["payload"]
    assert isinstance(payload, bytes) and path.stat().st_size < 1.01 * len(payload) + 4096
    assert torch.equal(load_checkpoint(path)["model"]["noise"], state["model"]["noise"])


def test_checkpoint_write_is_atomic(ckpt, tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    path.write_bytes(ckpt.read_bytes())
    before = path.read_bytes()
    real_save = torch.save

    def dies_midway(obj, f, *a, **k):
        if "payload" in obj:  # the file's own write
            f.write(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(load_checkpoint(ckpt), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


# ----------------------------------------------------------------------------------------------
# Resume: --out, settings that differ, --steps below the steps done
# ----------------------------------------------------------------------------------------------


def test_resume_writes_to_out_and_keeps_the_source(ckpt, tmp_path):
    before = ckpt.read_bytes()
    out = tmp_path / "continued"
    rc = main(["train", "--resume", str(ckpt), "--steps", "2", "--out", str(out), "--no-progress"])
    assert rc == 0 and ckpt.read_bytes() == before
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2


def test_resume_with_other_settings_names_each(ckpt, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(ckpt), "--lr", "0.5", "--image-size", "96",
              "--tasks", "semantic", "--no-progress"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert "lr 0.5 (checkpoint: 0.01)" in err and "image_size 96 (checkpoint: 64)" in err
    assert "tasks ['semantic'] (checkpoint: ['semantic', 'normals'])" in err
    with pytest.raises(ValueError, match=r"--steps 0 is below the 1 steps"):
        Trainer.resume(ckpt, steps=0, progress=False)
    same = Trainer.resume(ckpt, settings={"lr": 0.01, "tasks": "semantic,normals"}, progress=False)
    assert same.step == 1  # the same values are no difference


# ----------------------------------------------------------------------------------------------
# Non-finite numbers; the output folder
# ----------------------------------------------------------------------------------------------


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    t = make(tmp_path, steps=6, checkpoint_every=2, prefetch=False)
    real = backward.multitask_backward
    calls = []

    def nan_at_step_3(*a, **k):
        losses = real(*a, **k)
        calls.append(1)
        if len(calls) == 3:
            losses["normals"] = float("nan")
        return losses

    monkeypatch.setattr("ubernet_lite.training.trainer.multitask_backward", nan_at_step_3)
    with pytest.raises(NonFiniteError, match=r"step 3: non-finite loss of task\(s\) normals = nan"):
        t.run()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    with pytest.raises(ValueError, match="lr must be a finite number"):
        make(None, lr=float("nan"))


def test_out_folder_is_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        make(tmp_path / "file")
    with pytest.raises(PermissionError, match="cannot write in the output folder"):
        make(tmp_path / "file" / "sub")
    t = make(tmp_path / "new", steps=0)
    assert (tmp_path / "new").is_dir() and t.step == 0  # made before the first step


# ----------------------------------------------------------------------------------------------
# The CLI's bad values: one line on stderr, exit status 2, no trace
# ----------------------------------------------------------------------------------------------

BAD = [
    ["train", "--out", "{tmp}/o", "--image-size", "0"],
    ["train", "--out", "{tmp}/o", "--image-size", "-3"],
    ["train", "--out", "{tmp}/o", "--image-size", "abc"],
    ["train", "--out", "{tmp}/o", "--image-size", "8", "--steps", "1", "--no-progress"],
    ["train", "--out", "{tmp}/o", "--batch-sizes", "shared=0"],
    ["train", "--out", "{tmp}/o", "--batch-sizes", "shared"],
    ["train", "--out", "{tmp}/o", "--batch-sizes", "nope=3"],
    ["train", "--out", "{tmp}/o", "--batch-sizes", "shared=x"],
    ["train", "--out", "{tmp}/o", "--device", "cuda"] if not torch.cuda.is_available() else None,
    ["train", "--out", "{tmp}/o", "--device", "gpu"],
    ["train", "--out", "{tmp}/o", "--device", "cuda:99"],
    ["train", "--out", "{tmp}/o", "--lr", "nan"],
    ["train", "--out", "{tmp}/o", "--lr", "0"],
    ["train", "--out", "{tmp}/o", "--lr", "inf"],
    ["train", "--out", "{tmp}/o", "--momentum", "1.5"],
    ["train", "--out", "{tmp}/o", "--weight-decay", "-1"],
    ["train", "--out", "{tmp}/o", "--micro-batch", "0"],
    ["train", "--out", "{tmp}/o", "--steps", "-1"],
    ["train", "--out", "{tmp}/o", "--union-length", "0"],
    ["train", "--out", "{tmp}/o", "--tasks", "foo"],
    ["train", "--out", "{tmp}/o", "--tasks", ","],
    ["train", "--out", "{tmp}/o", "--preset", "huge"],
    ["train", "--out", "{tmp}/o", "--memory", "tiny"],
    ["train", "--out", "{tmp}/file.txt"],
    ["train", "--out", "{tmp}/file.txt/sub", "--steps", "1", "--no-progress"],
    ["train"],
    ["train", "--resume", "{tmp}/missing.pt"],
    ["train", "--resume", "{tmp}/empty.pt"],
    ["train", "--resume", "{tmp}/file.txt"],
    ["train", "--resume", "{tmp}/other.pt"],
    ["train", "--resume", "{tmp}"],
    ["evaluate", "--checkpoint", "{tmp}/empty.pt"],
    ["evaluate", "--checkpoint", "{tmp}/file.txt"],
    ["evaluate", "--checkpoint", "{tmp}/missing.pt"],
    ["evaluate", "--checkpoint", "{tmp}/other.pt"],
    ["evaluate", "--checkpoint", "{ckpt}", "--images", "-1"],
    ["evaluate", "--checkpoint", "{ckpt}", "--thresholds", "0"],
    ["evaluate", "--checkpoint", "{ckpt}", "--split", "nope", "--images", "1"],
    ["evaluate", "--checkpoint", "{ckpt}", "--tasks", "foo"],
    ["evaluate", "--checkpoint", "{ckpt}", "--device", "cuda:x"],
    ["predict", "--checkpoint", "{ckpt}", "--index", "-1"],
    ["predict", "--checkpoint", "{ckpt}", "--index", "100000"],
    ["predict", "--checkpoint", "{ckpt}", "--out", "{tmp}"],
    ["train", "--resume", "{ckpt}", "--steps", "0"],
    ["train", "--resume", "{ckpt}", "--seed", "5"],
    ["train", "--resume", "{ckpt}", "--preset", "paper"],
    ["nope"],
]


@pytest.mark.parametrize("argv", [a for a in BAD if a is not None], ids=lambda a: " ".join(a))
def test_cli_bad_value_is_one_line_exit_2(argv, ckpt, tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "file.txt").write_text("hello")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    argv = [a.format(tmp=tmp_path, ckpt=ckpt) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


def test_debug_shows_the_trace(tmp_path, capsys):
    (tmp_path / "bad.pt").write_text("junk")
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", str(tmp_path / "bad.pt"), "--debug"])
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


def test_model_takes_float64_and_float16_images():
    model = ul.UberNet(cfg()).eval()
    with torch.no_grad():
        ref = model(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
        for dtype in (torch.float64, torch.float16):
            x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
            out = model(x)
            assert out["semantic"].dtype == torch.float32
            assert torch.allclose(out["semantic"], ref["semantic"], atol=1e-2)

"""`make setup` registers the notebook kernel inside .venv, never in the user's Jupyter folder.

The check builds a throw-away environment that sees this interpreter's packages (a .pth file),
runs the Makefile's own `ipykernel install` line in it, and asks that environment's Jupyter which
`ubernet-lite` kernel it would start: the one inside it, running its own python, even when the
user's folder holds a stale kernel of the same name (another clone's, or a deleted one's).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL = "ubernet-lite"


def makefile_install_line() -> str:
    lines = [ln.strip() for ln in (REPO / "Makefile").read_text().splitlines()]
    (line,) = [ln for ln in lines if "-m ipykernel install" in ln]
    return line


def test_makefile_installs_kernel_into_the_environment():
    line = makefile_install_line()
    assert "--sys-prefix" in line and "--user" not in line
    assert re.search(
        r"^export JUPYTER_PREFER_ENV_PATH := 1$", (REPO / "Makefile").read_text(), re.M
    )


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs to run from a virtual environment")
def test_kernel_resolves_to_its_own_environment(tmp_path):
    env = tmp_path / "clone" / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    env_site = Path(
        subprocess.check_output(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (env_site / "parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    home = tmp_path / "home"  # a user folder holding a stale kernel of the same name
    stale = home / ".local" / "share" / "jupyter" / "kernels" / KERNEL
    stale.mkdir(parents=True)
    (stale / "kernel.json").write_text(
        json.dumps({"argv": ["/deleted/clone/.venv/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "stale", "language": "python"})
    )  # fmt: skip
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    run_env.update(HOME=str(home), JUPYTER_PREFER_ENV_PATH="1", PYTHONNOUSERSITE="1")
    install = shlex.split(
        makefile_install_line().replace("$(PY)", str(py)).replace("$(KERNEL)", KERNEL)
    )
    install = [a for a in install if a != ">/dev/null"]
    subprocess.run(install, check=True, env=run_env, capture_output=True)
    assert (env / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").is_file()
    out = subprocess.check_output(
        [py, "-c", "from jupyter_client.kernelspec import KernelSpecManager as M; "
                   f"s = M().get_kernel_spec({KERNEL!r}); print(s.resource_dir); print(s.argv[0])"],
        env=run_env, text=True,
    ).split("\n")  # fmt: skip
    assert Path(out[0]) == env / "share" / "jupyter" / "kernels" / KERNEL
    assert Path(out[1]).resolve() == py.resolve() or Path(out[1]) == py
    listed = subprocess.check_output(  # what `.venv/bin/jupyter kernelspec list` prints
        [py, "-c", "from jupyter_client.kernelspecapp import KernelSpecApp as A; A.launch_instance(['list'])"],
        env=run_env, text=True,
    )  # fmt: skip
    assert str(env / "share" / "jupyter" / "kernels" / KERNEL) in listed, listed

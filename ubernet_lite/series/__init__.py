"""The runs of the notebook series and what they are tested on.

* :mod:`.runs` -- :func:`preset_settings` (steps, input size, B_p, init per preset and, for
  the lite preset, per scale: :data:`SCALE_SETTINGS`, ``"quick"`` or ``"course"``),
  :func:`resolve_init` (``init="pretrained"``: the shared pretrained trunk),
  :func:`cached_run` (train once, then load from ``outputs/runs/<name>``),
  :func:`series_run` (the runs of notebooks 00, 09 and 10), :func:`short_run_batch_sizes`,
  :func:`single_run_name` and :func:`table9_runs` (notebook 10's other runs);
* :mod:`.pool` -- :func:`train_runs`: the runs not cached yet, trained in worker processes;
  :func:`start_runs`: the same in the background (:class:`BackgroundRuns`),
  :func:`start_other_core` (notebooks 00 and 09);
* :mod:`.attentive` -- :func:`cached_attentive_run`: notebook 11's attentive single-tasking
  runs, trained once and loaded from ``outputs/runs/<name>``;
* :mod:`.results_data` -- :func:`results_data`: the synthetic test split or each task's real
  test set (notebooks 00 and 10).

The network config of a run is :func:`ubernet_lite.config.make_config`.
"""

from .attentive import AttentiveRun, cached_attentive_run
from .pool import BackgroundRuns, start_other_core, start_runs, train_runs
from .results_data import RealResults, ResultsData, SyntheticResults, results_data
from .runs import (
    PRESET_SETTINGS,
    PRETRAINED,
    SCALE_SETTINGS,
    SCALE_TEST_IMAGES,
    SCALES,
    cached_run,
    check_scale,
    preset_settings,
    resolve_init,
    run_dir,
    series_dir_name,
    series_run,
    short_run_batch_sizes,
    single_run_name,
    table9_runs,
)

__all__ = [
    "AttentiveRun",
    "BackgroundRuns",
    "PRESET_SETTINGS",
    "PRETRAINED",
    "SCALES",
    "SCALE_SETTINGS",
    "SCALE_TEST_IMAGES",
    "check_scale",
    "preset_settings",
    "resolve_init",
    "RealResults",
    "ResultsData",
    "SyntheticResults",
    "cached_attentive_run",
    "cached_run",
    "results_data",
    "run_dir",
    "series_dir_name",
    "series_run",
    "short_run_batch_sizes",
    "single_run_name",
    "start_other_core",
    "start_runs",
    "table9_runs",
    "train_runs",
]

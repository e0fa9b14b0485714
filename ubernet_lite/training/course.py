"""The course-scale recipe of the synthetic series (docs/course_recipe.md: how it was measured).

:data:`COURSE_PRETRAIN` is the shared pretraining stage (:mod:`.pretrain`: class presence on
images of their own, the analogue of the paper's ImageNet start), run once and cached;
:data:`COURSE_SETTINGS` the run settings of every compared model (the seven-task run, the seven
single-task runs and Table 9's normals weights), in the keywords of
:func:`ubernet_lite.series.series_run` (``steps``, ``image_size``, ``micro_batch``,
``short_batches``) plus the two :class:`~.settings.TrainSettings` fields the course adds
(``union``; ``init="pretrained"`` is ``series.resolve_init``'s name of the shared trunk,
:func:`.pretrain.pretrained_init`).

```python
cfg = make_config("lite")
trainer = Trainer(cfg, **dict(COURSE_SETTINGS, init=course_init(cfg)), ...)  # pretrains once
```
"""

from __future__ import annotations

from .pretrain import PretrainSettings, pretrained_init

#: The shared pretraining stage: 24,000 images (96 px, micro-batch 16, lr 0.05, poly decay) --
#: :class:`PretrainSettings`' defaults, what :func:`.pretrain.pretrained_init` trains.
COURSE_PRETRAIN = PretrainSettings()

#: The course scale's run settings (every compared model the same).
COURSE_SETTINGS = dict(
    steps=5000,  # micro-batches: 20,000 samples
    image_size=96,
    micro_batch=4,
    short_batches=4,  # B_p = 4 for the trunk and every task (detection: 1)
    lr=0.01,
    union="course",  # ubernet_lite.data.synthetic.views.COURSE_TABLE
    init="pretrained",  # course_init(cfg)
)


def course_init(cfg, **kwargs) -> str:
    """``"trunk:<path>"`` of the course's pretrained trunk for ``cfg`` (trained on first use, then
    cached under ``outputs/pretrain``); ``kwargs`` go to :func:`.pretrain.pretrained_init`."""
    return pretrained_init(cfg, image_size=COURSE_SETTINGS["image_size"], **kwargs)

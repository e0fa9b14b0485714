"""The paper preset on the CPU: one full forward at 321 x 321 (slow: the only paper-size forward of
the suite; odd sizes are checked on the lite preset, whose layer pattern is the same)."""

import torch

from ubernet_lite.config import UberNetConfig
from ubernet_lite.model import UberNet
from ubernet_lite.tasks import TASKS


def test_paper_preset_all_tasks_321():
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.paper()).eval()
    counts = model.describe(None)
    assert 20_400_000 < counts["trunk"] < 20_600_000  # DeepLab-LargeFOV: 20.5M parameters
    with torch.no_grad():
        feats = model.encode(torch.rand(1, 3, 321, 321))
        assert [tuple(t.shape[1:]) for t in feats.taps[0]] == [
            (64, 321, 321),
            (128, 161, 161),
            (256, 81, 81),
            (512, 41, 41),
            (512, 41, 41),
            (1024, 41, 41),
        ]
        assert [tuple(t.shape[-2:]) for t in feats.taps[2]][-1] == (11, 11)  # 80 px level
        out = {}
        for name in model.task_names:
            out.update(model.decode(name, feats))
    for name, spec in TASKS.items():
        if spec.kind == "detection":
            assert len(out[name]) == 1
            b = out[name][0]["boxes"]
            assert len(b) > 0 and b.min() >= 0 and b.max() <= 321
        else:
            assert out[name].shape == (1, spec.out_channels, 321, 321), name

"""experiments/log.jsonl as the Markdown table of docs/course_recipe.md."""

import json
from pathlib import Path

ORDER = [
    "semantic",
    "parts",
    "detection",
    "semantic_boundaries",
    "saliency",
    "boundaries",
    "normals",
]
HEAD = [
    "sem. mIoU",
    "parts mIoU",
    "det. mAP",
    "sem. bnd mMF",
    "sal. maxF",
    "bnd ODS",
    "normals deg",
]
TARGET = ["30", "25", "15", "20", "50", "50", "12"]

rows = [json.loads(line) for line in Path(__file__).with_name("log.jsonl").read_text().splitlines()]
print("| run | init | union (shares) | lr | samples | train s | eval | " + " | ".join(HEAD) + " |")
print("|" + "---|" * (8 + len(HEAD)))
print("| target | | | | | | | " + " | ".join(TARGET) + " |")
for r in rows:
    a = r["args"]
    ev = f"{r.get('eval_images', 64)} img / {r.get('thresholds', 9)} thr"
    cells = [str(r["primary"].get(t, "")) for t in ORDER]
    print(
        f"| {r['name']} | {a['init']}{'' if a['init'] == 'random' else ' ' + str(a['pre_samples'])}"
        f" | {a['union']} | {a['lr']} | {r['samples']} of {a['steps'] * a['micro_batch']}"
        f" | {r['train_s']:.0f} | {ev} | " + " | ".join(cells) + " |"
    )

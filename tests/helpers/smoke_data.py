"""The 6 prompts of `make smoke-gpu`: 5 small image questions and one whose sixteen large images
exceed `rl.rollout.max_prompt_tokens` (conversion must refuse it, listed in the report).
Usage: python tests/helpers/smoke_data.py OUT_DIR  (writes OUT_DIR/rl.jsonl and the images)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw


def write(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(5):
        img = Image.new("RGB", (320, 240), "white")
        ImageDraw.Draw(img).rectangle([40 + 20 * i, 60, 120 + 20 * i, 160], fill="red")
        img.save(out / f"scene{i}.png")
        rows.append(
            {"qid": f"smoke-{i}", "question": "How many red boxes are there?",
             "image": [str(out / f"scene{i}.png")], "answer": "1", "is_video": False}
        )  # fmt: skip
    Image.new("RGB", (2000, 2000), "gray").save(out / "large.png")
    rows.append(
        {"qid": "smoke-too-long", "question": "What is shown?",
         "image": [str(out / "large.png")] * 16, "answer": "gray", "is_video": False}
    )  # fmt: skip
    path = out / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/smoke/data")))

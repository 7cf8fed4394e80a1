"""The up-front record check (`pixelctl.rejects`): what reading every image header costs.

RL and eval data are now checked before a run starts: every record's fields (`to_query`) and
every image's header (`image_problem`: open, read the size; no pixel decode). This measures, on
generated JPEG/PNG files of ~2 Mpx (the size of the real benchmarks' originals), in one run:
  1. `load_queries` without the header check (fields and file existence only: the baseline,
     what the loader did before);
  2. `load_queries` with it (what it does now);
  3. a full decode of every image (what the check avoids: `Image.load()`).
Ratios compare with the baseline; the check must stay a small multiple of it and far below a
decode.

    .venv/bin/python benchmarks/rejects.py [--records 400]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

from PIL import Image

from pixelctl import queries


def make_data(root: Path, n: int) -> Path:
    images = []
    for i, (suffix, size) in enumerate([(".jpg", (1920, 1080)), (".png", (1600, 1200))]):
        path = root / f"img{i}{suffix}"
        Image.effect_noise(size, 40).convert("RGB").save(path)
        images.append(path.name)
    rows = [
        {"qid": f"p-{k}", "question": "q?", "image": [images[k % 2]], "answer": "a"}
        for k in range(n)
    ]
    data = root / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.records)
        queries.load_queries([data])  # warm the page cache
        with mock.patch("pixelctl.rejects.check_images", lambda paths, is_video=False: None):
            base = timed(lambda: queries.load_queries([data]))
        check = timed(lambda: queries.load_queries([data]))

        def decode_all() -> None:
            for q in queries.load_queries([data]).queries:
                for p in q.images:
                    with Image.open(p) as im:
                        im.load()

        decode = timed(decode_all)
    n = args.records
    print(f"{'variant':<34}{'ms/record':>10}{'ratio':>8}")
    for name, t in [
        ("fields only (before)", base),
        ("fields + image headers (now)", check),
        ("fields + full decode", decode),
    ]:
        print(f"{name:<34}{1000 * t / n:>10.3f}{t / base:>8.1f}")


if __name__ == "__main__":
    main()

"""What `make smoke-gpu` asserts after the run (docs/openrlhf.md, "one-GPU smoke").
Usage: python tests/helpers/smoke_check.py RUN_DIR [GPU_MEMORY_LOG]; exit 1 on any failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def check(run: Path, gpu_log: Path | None = None) -> list[str]:
    failures = []
    log = (run / "logs" / "job.log").read_text(errors="replace")
    metrics = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    report = json.loads((run / "data" / "prompts.jsonl.report.json").read_text())

    def need(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    need("Failed to merge the Job's runtime env" not in log, "no runtime-env merge error")
    need("is not patched for pixelctl" not in log, "every node patched")
    need(
        [r["qid"] for r in report["rejects"]] == ["smoke-too-long"], "the over-long prompt refused"
    )
    need(len(metrics) == 3, f"3 rounds (2 + 2 + 1 prompts), got {len(metrics)}")
    for key in ("pixelctl/rapr", "pixelctl/replayed", "pixelctl/failed"):
        need(all(key in m for m in metrics), f"{key} in every step log")
    need(all(m.get("pixelctl/smoke_prompt_match") == 1.0 for m in metrics),
         "vLLM's prompt length equals the HF processor's")  # fmt: skip
    need(
        all(m.get("pixelctl/smoke_turn2_images") == 2.0 for m in metrics), "turn 2 carries 2 images"
    )
    need(any(p.name.startswith("global_step1") for p in (run / "checkpoints").glob("*")),
         "a checkpoint after round 1")  # fmt: skip
    need((run / "checkpoints" / "pixelctl_replay.pt").is_file(), "the SSR buffer saved with it")
    need(
        all(m.get("timing/broadcast", 0) > 0 for m in metrics), "the weights reach vLLM each round"
    )
    for m in metrics:
        print(
            f"round {m['step']}: trainer RSS {m.get('pixelctl/trainer_rss_gb', float('nan')):.2f} GB"
        )
    if gpu_log and gpu_log.is_file():
        used = [int(x) for x in gpu_log.read_text().split() if x.isdigit()]
        print(f"peak GPU memory: {max(used, default=0)} MiB")
    return failures


if __name__ == "__main__":
    gpu = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    sys.exit(1 if check(Path(sys.argv[1]), gpu) else 0)

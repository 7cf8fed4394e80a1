"""The stats report: what the dataset holds, what was rejected and why, and what it cost.

Computed from the files (`sft.jsonl`, `rejects.jsonl`, the response cache), never from in-memory
counters, so a resumed run reports the whole dataset and not just its last leg. Token counts are
the sum over cached answers: each answer was paid once, whatever the number of runs.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from pixelctl.rundir import iter_jsonl
from pixelctl.synth.output import REJECTS, SFT


def reason_category(reason: str) -> str:
    """Group reasons that differ only in paths, numbers or quoted values."""
    head = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([^)]*\)", "", reason).split(":", 1)[0]
    head = re.sub(r"\d+(\.\d+)?", "N", head)
    return re.sub(r"\s+", " ", head).strip()


def _nested(counter: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (a, b), n in sorted(counter.items()):
        out.setdefault(a, {})[b] = n
    return out


def compute_stats(
    out: Path,
    *,
    plan: dict[str, Any],
    tokens: dict[str, int],
    usd_in: float,
    usd_out: float,
    this_run: dict[str, Any],
) -> dict[str, Any]:
    kinds: Counter = Counter()
    sources: Counter = Counter()
    kind_source: Counter = Counter()
    ops: Counter = Counter()
    errors = 0
    written: set[str] = set()
    for r in iter_jsonl(out / SFT):
        written.add(r["id"])
        kinds[r["kind"]] += 1
        sources[r["source"]] += 1
        kind_source[(r["kind"], r["source"])] += 1
        ops[int(r["operations"])] += 1
        errors += len(r["error_turns"])
    rejects = [r for r in iter_jsonl(out / REJECTS) if r["id"] not in written]
    unique = {(r["id"], r["reason"]): r for r in rejects}.values()
    n = sum(kinds.values())
    from pixelctl.synth.text_sampler import pass_rate_summary  # reads text_only_pass_rates.jsonl

    sampled = pass_rate_summary(out)
    usd = (
        tokens.get("input_tokens", 0) / 1000 * usd_in
        + tokens.get("output_tokens", 0) / 1000 * usd_out
    )
    return {
        "records": n,
        "by_kind": dict(sorted(kinds.items())),
        "by_source": dict(sorted(sources.items())),
        "by_kind_and_source": _nested(kind_source),
        "operations_per_trajectory": {
            "mean": round(sum(k * v for k, v in ops.items()) / n, 4) if n else 0.0,
            "histogram": {str(k): v for k, v in sorted(ops.items())},
        },
        "inserted_error_turns": errors,
        "rejects": {
            "total": len({r["id"] for r in unique}),
            "by_stage": dict(Counter(r.get("stage", "seed") for r in unique)),
            "by_reason": dict(Counter(reason_category(r["reason"]) for r in unique).most_common()),
        },
        "plan": plan,
        **({"text_only_sampling": sampled} if sampled else {}),
        "tokens": {**tokens, "usd": round(usd, 6)},
        "this_run": this_run,
    }

"""One collector per stage: which files a stage run holds and what of them goes on the page.

RL: curves from `metrics.jsonl`, the latest `samples/round-*.jsonl` with each rollout's reward
split recomputed from its recorded fields by `pixelctl.rl.rewards.shape_group` (the same function
training used, so the split adds up to the logged reward, which is checked). Eval: `metrics.json`
as a table, `samples.jsonl` per benchmark with failures first. SFT: loss curves and frozen
`records.jsonl` conversations with the turns the loss mask trains. Synth: `stats.json` tables
and `sft.jsonl` records per trajectory kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelctl.viewer import collect as c
from pixelctl.viewer.trajectory import Picture, Trajectory, build

Size = Callable[[Path | None], tuple[int, int] | None]
RL_PANELS = [
    ("accuracy and mean reward", ["accuracy", "reward_mean", "reward"]),
    ("RaPR (rate of pixel-space reasoning)", ["rapr"]),
    ("curiosity and penalty (mean, weighted)", ["curiosity", "penalty"]),
    ("tool calls per rollout", ["calls_per_rollout"]),
    ("response length (tokens)", ["response_tokens", "response_length"]),
    ("loss", ["loss", "pg_loss", "policy_loss"]),
    ("KL to the starting model (rl.optim.kl_coef > 0)", ["kl"]),
    ("policy entropy (rl.optim.entropy_coef > 0)", ["entropy"]),
    ("learning rate", ["lr"]),
    ("grad norm", ["grad_norm"]),
]


def _mode(config: dict[str, Any]) -> str:
    return str((config.get("executor") or {}).get("box_mode") or "strict")


def _short(v: Any, n: int = 400) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 1] + "…"


# ---------------------------------------------------------------------------------------- rl
def collect_rl(path: Path, limits: c.Limits, size: Size) -> c.StageReport:
    report = c.base_report("rl", path)
    config = c.read_yaml(path / "config.yaml")
    report.charts = c.curves(c.read_jsonl(path / "metrics.jsonl"), RL_PANELS)
    files = sorted((path / "samples").glob("round-*.jsonl"))
    if not files:
        report.notes.append("no samples/round-*.jsonl in this run")
    for f in reversed(files[-limits.rounds :]):
        report.groups.append(_rl_round(f, path, config, size))
    if len(files) > limits.rounds:
        report.notes.append(f"showing the latest {limits.rounds} of {len(files)} sampled rounds")
    return report


def _rl_round(f: Path, run: Path, config: dict[str, Any], size: Size) -> c.Group:
    records = c.read_jsonl(f)
    resolve = c.resolver(run / "samples" / "img", run, Path.cwd())
    splits, note = reward_splits(records, (config.get("rl") or {}).get("reward") or {})
    group = c.Group(f"{f.stem} ({len(records)} rollouts of one query)", note)
    rows = []
    for i, (r, split) in enumerate(zip(records, splits, strict=True), start=1):
        t = build(
            r.get("messages") or [],
            resolve,
            calls=r.get("calls") or [],
            originals=[str(p) for p in r.get("inputs") or []],
            mode=_mode(config),
            target_size=lambda p: size(p.fitted or p.path),
            title=f"rollout {i}: {r.get('qid', '?')}",
        )
        correct = r.get("correct")
        t.verdict = "correct" if (correct or 0) > 0.5 else "wrong"
        t.split, t.anchor = split, f"{f.stem}-{i}"
        t.facts = _facts(
            r, ("qid", "question", "answer", "correct", "stop_reason", "completion_tokens")
        )
        group.trajectories.append(t)
        rows.append(
            [str(i), c.fmt_num(correct), str(len(r.get("calls") or []))]
            + [
                c.fmt_num(split.get(k))
                for k in ("accuracy", "curiosity", "penalty", "reward", "advantage")
            ]
        )
    header = [
        "rollout",
        "correct",
        "calls",
        "accuracy",
        "curiosity",
        "penalty",
        "reward",
        "advantage",
    ]
    group.tables.append(c.Table("reward split", header, rows))
    return group


def _is_video(r: dict[str, Any]) -> bool:
    first = next((m for m in r.get("messages") or [] if m.get("role") == "user"), {})
    content = first.get("content")
    return isinstance(content, list) and any(
        i.get("type") == "video" for i in content if isinstance(i, dict)
    )


def reward_splits(
    records: list[dict[str, Any]], reward_cfg: dict[str, Any]
) -> tuple[list[dict[str, float]], str]:
    """Per rollout: accuracy, curiosity, penalty (as added), reward and advantage.

    Recomputed over the group with the run's reward settings; if the sum disagrees with the
    logged reward (older runs, other engines) only the logged numbers are shown.
    """
    from pixelctl.agent import final_error_of
    from pixelctl.rl.rewards import shape_group, view_rollout

    logged = [{"reward": r.get("reward"), "advantage": r.get("advantage")} for r in records]
    keys = ("mode", "alpha", "beta", "H", "N")
    try:
        views = [
            view_rollout(
                {
                    "calls": r.get("calls") or [],
                    "final_error": final_error_of(r.get("calls") or []),
                    "is_video": _is_video(r),
                },
                r.get("correct"),  # type: ignore[arg-type]
                count=reward_cfg.get("count", "attempts"),  # runs before rl.reward.count
            )
            for r in records
        ]
        shaped = shape_group(views, **{k: reward_cfg[k] for k in keys if k in reward_cfg})
    except (ValueError, TypeError) as exc:
        return logged, f"reward split unavailable: {exc}"
    if any(
        not isinstance(lg["reward"], int | float) or abs(s - lg["reward"]) > 1e-6
        for s, lg in zip(shaped.rewards, logged, strict=True)
    ):
        return (
            logged,
            "the recomputed reward split does not match the logged rewards; showing the logged values",
        )
    out = []
    for k, lg in enumerate(logged):
        base = shaped.rewards[k] - shaped.curiosity[k] - shaped.penalty[k]
        out.append(
            {"accuracy": base, "curiosity": shaped.curiosity[k], "penalty": shaped.penalty[k], **lg}
        )
    rapr = shaped.stats.rapr
    return (
        out,
        f"RaPR {rapr:.3f}; reward = accuracy + curiosity + penalty ({reward_cfg.get('mode', 'paper')} mode)",
    )


def _facts(r: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, _short(r[k])) for k in keys if r.get(k) not in (None, "", [])]


# ---------------------------------------------------------------------------------------- eval
def collect_eval(path: Path, limits: c.Limits, size: Size) -> c.StageReport:
    report = c.base_report("eval", path)
    config = c.read_yaml(path / "config.yaml")
    metrics = c.read_json(path / "metrics.json")
    if isinstance(metrics, dict):
        report.tables.append(eval_table(metrics))
    else:
        report.notes.append("no metrics.json yet (the run has not finished)")
    records = c.read_jsonl(path / "samples.jsonl")
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_bench.setdefault(str(r.get("benchmark") or "?"), []).append(r)
    bounds = ((config.get("executor") or {}).get("bounds") or {}).get("eval") or {}
    fit = _fitter(bounds, size)
    resolve = c.resolver(path, Path.cwd())
    for bench, recs in by_bench.items():
        ordered = failures_first(recs)
        failed = sum(verdict(r) in ("wrong", "error") for r in recs)
        group = c.Group(
            bench,
            f"{failed} of {len(recs)} failed; showing {min(len(recs), limits.per_benchmark)}, failures first",
        )
        for r in ordered[: limits.per_benchmark]:
            group.trajectories.append(_eval_trajectory(r, resolve, _mode(config), fit))
        report.groups.append(group)
    return report


def _fitter(bounds: dict[str, Any], size: Size) -> Callable[[Picture], tuple[int, int] | None]:
    """The size of the image the executor cropped: inputs fitted to the eval bounds, crops as is."""
    from pixelctl.executor import smart_resize
    from pixelctl.models.qwen import FACTOR

    def target_size(p: Picture) -> tuple[int, int] | None:
        wh = size(p.path)
        if wh is None or p.fitted is None or not bounds.get("image_max_pixels"):
            return wh
        try:
            h, w = smart_resize(
                wh[1], wh[0], FACTOR, bounds.get("image_min_pixels"), bounds.get("image_max_pixels")
            )
        except ValueError:
            return wh
        return w, h

    return target_size


def verdict(r: dict[str, Any]) -> str:
    score = r.get("official")
    if r.get("error") or not isinstance(score, int | float):
        return "error"
    return "correct" if score >= 1 else "partial" if score > 0 else "wrong"


def failures_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors, then wrong, then partial, then correct; dataset order within each."""
    rank = {"error": 0, "wrong": 1, "partial": 2, "correct": 3}
    return sorted(records, key=lambda r: rank[verdict(r)])


def _eval_trajectory(
    r: dict[str, Any],
    resolve: Callable[[str], Path | None],
    mode: str,
    fit: Callable[[Picture], tuple[int, int] | None],
) -> Trajectory:
    t = build(
        r.get("messages") or [],
        resolve,
        calls=r.get("calls") or [],
        originals=[str(p) for p in r.get("images") or []],
        mode=mode,
        target_size=fit,
        title=f"{r.get('qid', '?')}",
    )
    t.verdict, t.anchor = verdict(r), f"eval-{r.get('qid', '')}"
    keys = (
        "qid",
        "category",
        "question",
        "options",
        "answer",
        "extracted",
        "metric",
        "official",
        "paper_compat",
        "stop_reason",
        "n_calls",
        "error",
    )
    t.facts = _facts(r, keys)
    return t


def eval_table(metrics: dict[str, Any]) -> c.Table:
    """Per benchmark: the official metric and paper-compat beside the paper's number."""
    from pixelctl.evaluation.table import PAPER_TABLE1, TITLES

    header = [
        "benchmark",
        "n",
        "metric",
        "ours",
        "paper-compat",
        "paper (Pixel Reasoner)",
        "tool use %",
        "calls",
        "no answer",
        "errors",
    ]
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict):
            continue
        metric = str(m.get("metric") or "accuracy")
        paper = PAPER_TABLE1.get(name)
        rows.append(
            [
                TITLES.get(name, name),
                c.fmt_num(m.get("n")),
                metric,
                c.fmt_num(m.get(metric)),
                c.fmt_num(m.get("paper_compat")),
                f"{paper[1]:.1f}" if paper else "—",
                c.fmt_num(m.get("tool_use_rate")),
                c.fmt_num(m.get("calls_mean")),
                c.fmt_num(m.get("no_answer")),
                c.fmt_num(m.get("errors")),
            ]
        )
    return c.Table("results per benchmark (percent)", header, rows)

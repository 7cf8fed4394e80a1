"""Open-R1-style flat SFT recipes → our nested recipe mapping, with one notice per decision.

Open-R1's `sft.py` reads a flat YAML of `ModelConfig`/`ScriptArguments`/`SFTConfig` fields
(`model_name_or_path`, `learning_rate`, `dataset_mixture`, …) pinned to trl 0.18 /
transformers 4.52. Users bring those files; we translate each key into our schema, say what
was renamed (`torch_dtype` → `model.dtype`, `max_seq_length` → `sft.max_length`,
`warmup_ratio` passed to transformers 5 as `warmup_steps` < 1) and what has no meaning here.
A key we do not know is an error, never a silent drop. Pure: no heavy imports.
"""

from __future__ import annotations

import difflib
from typing import Any

# flat key → dotted path in our recipe
RENAMES: dict[str, str] = {
    "model_name_or_path": "model.name_or_path",
    "torch_dtype": "model.dtype",
    "dtype": "model.dtype",
    "attn_implementation": "model.attn_implementation",
    "freeze_vision_modules": "model.freeze_vision",
    "learning_rate": "sft.lr",
    "lr_scheduler_type": "sft.lr_scheduler",
    "warmup_ratio": "sft.warmup_ratio",
    "num_train_epochs": "sft.epochs",
    "max_steps": "sft.max_steps",
    "per_device_train_batch_size": "sft.per_device_batch_size",
    "max_seq_length": "sft.max_length",
    "max_length": "sft.max_length",
    "weight_decay": "sft.weight_decay",
    "max_grad_norm": "sft.grad_clip",
    "gradient_checkpointing": "sft.gradient_checkpointing",
    "save_steps": "sft.save_steps",
    "logging_steps": "sft.logging_steps",
    "seed": "sft.seed",
}
WHY_RENAMED = {
    "torch_dtype": "transformers 5 renamed torch_dtype to dtype",
    "max_seq_length": "TRL renamed max_seq_length to max_length",
    "warmup_ratio": "transformers 5 removed warmup_ratio; it is passed as warmup_steps < 1",
}
# keys that only matter to Open-R1's own script, the hub or its loggers
IGNORED: dict[str, str] = {
    k: why
    for why, keys in {
        "hub/logging, not used by pixelctl": (
            "hub_model_id",
            "hub_strategy",
            "push_to_hub",
            "report_to",
            "wandb_entity",
            "wandb_project",
            "log_level",
            "logging_strategy",
            "run_name",
            "callbacks",
            "benchmarks",
            "model_revision",
            "trust_remote_code",
            "log_completions",
        ),
        "pixelctl chooses the output folder (the run directory)": (
            "output_dir",
            "overwrite_output_dir",
            "save_strategy",
            "save_total_limit",
            "save_only_model",
        ),
        "no evaluation during SFT (use `pixelctl eval`)": (
            "do_eval",
            "eval_strategy",
            "eval_steps",
            "per_device_eval_batch_size",
        ),
        "derived from model.dtype and the device": ("bf16", "fp16", "tf32"),
        "set internally": (
            "gradient_checkpointing_kwargs",
            "dataset_num_proc",
            "use_liger_kernel",
            "dataset_text_field",
            "dataloader_num_workers",
            "eos_token",
            "chat_template",
            "lr_scheduler_kwargs",
            "dataset_config",
            "dataset_train_split",
            "dataset_test_split",
        ),
    }.items()
    for k in keys
}
SCHEDULERS = {
    "cosine": "cosine",
    "linear": "linear",
    "constant": "constant",
    "constant_with_warmup": "constant",
    "cosine_with_min_lr": "cosine",
}
KNOWN = (
    set(RENAMES)
    | set(IGNORED)
    | {"dataset_name", "dataset_mixture", "gradient_accumulation_steps", "packing", "warmup_steps"}
)


def looks_like_open_r1(raw: dict[str, Any]) -> bool:
    """A flat mapping with Open-R1 keys, not our sectioned recipe."""
    return (
        bool(raw)
        and any(k in RENAMES or k in KNOWN for k in raw)
        and not any(
            k in ("model", "sft", "rl", "synth", "eval", "launch", "executor", "prompt")
            for k in raw
        )
    )


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    node = out
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def translate_open_r1(flat: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The nested recipe mapping for `flat`, and the notices to show the user.

    Raises ValueError naming every key that is unknown or cannot be translated.
    """
    unknown = [k for k in flat if k not in KNOWN]
    if unknown:
        hints = [
            f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, KNOWN, 1)) else k
            for k in unknown
        ]
        raise ValueError("unknown Open-R1 keys: " + ", ".join(hints))
    out: dict[str, Any] = {}
    notices: list[str] = []
    problems: list[str] = []
    for key, value in flat.items():
        if key in IGNORED:
            notices.append(f"{key}: ignored ({IGNORED[key]})")
        elif key in RENAMES:
            _rename(key, value, out, notices, problems)
    _batch(flat, out, notices)
    _data(flat, out, notices, problems)
    if flat.get("packing"):
        notices.append("packing: ignored (TRL does not pack vision data)")
    if problems:
        raise ValueError("; ".join(problems))
    return out, notices


def _rename(key: str, value: Any, out: dict, notices: list[str], problems: list[str]) -> None:
    target = RENAMES[key]
    if key == "lr_scheduler_type":
        if value not in SCHEDULERS:
            problems.append(f"lr_scheduler_type {value!r}: choose one of cosine, linear, constant")
            return
        if SCHEDULERS[value] != value:
            notices.append(
                f"lr_scheduler_type {value} → sft.lr_scheduler {SCHEDULERS[value]} "
                "(its extra arguments are not supported)"
            )
        value = SCHEDULERS[value]
    _put(out, target, value)
    if key in WHY_RENAMED:
        notices.append(f"{key} → {target} ({WHY_RENAMED[key]})")


def _batch(flat: dict[str, Any], out: dict, notices: list[str]) -> None:
    accum = flat.get("gradient_accumulation_steps")
    if "warmup_steps" in flat:
        steps = flat["warmup_steps"]
        if isinstance(steps, (int, float)) and 0 <= steps < 1:
            _put(out, "sft.warmup_ratio", float(steps))
            notices.append(f"warmup_steps {steps} (a fraction) → sft.warmup_ratio")
        else:
            raise ValueError(f"warmup_steps {steps!r}: give warmup_ratio (a fraction) instead")
    if accum is None:
        return
    per_device = flat.get("per_device_train_batch_size", 1)
    _put(out, "sft.global_batch_size", int(per_device) * int(accum))
    notices.append(
        f"gradient_accumulation_steps {accum} → sft.global_batch_size {int(per_device) * int(accum)}"
        " (per device × accumulation on ONE device; multiply by the GPU count for the real "
        "global batch and set sft.global_batch_size)"
    )


def _data(flat: dict[str, Any], out: dict, notices: list[str], problems: list[str]) -> None:
    if "dataset_name" in flat and "dataset_mixture" in flat:
        problems.append("give dataset_name or dataset_mixture, not both")
        return
    if "dataset_name" in flat:
        _put(out, "sft.data", [str(flat["dataset_name"])])
        notices.append("dataset_name → sft.data (a local record file or folder; no hub access)")
    mixture = flat.get("dataset_mixture")
    if mixture is None:
        return
    entries = mixture.get("datasets") if isinstance(mixture, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        problems.append("dataset_mixture: expected {datasets: [{id: ..., weight: ...}, ...]}")
        return
    _put(out, "sft.data", [str(e["id"]) for e in entries])
    notices.append(f"dataset_mixture → sft.data ({len(entries)} sources)")
    for e in entries:
        if e.get("weight", 1.0) != 1.0:
            notices.append(
                f"dataset_mixture: weight {e['weight']} of {e['id']} ignored; every "
                "record is used once per epoch (subsample the file instead)"
            )
        if e.get("columns") or e.get("config") not in (None, "default"):
            notices.append(
                f"dataset_mixture: columns/config of {e['id']} ignored (records are read whole)"
            )
    for k in ("seed", "test_split_size"):
        if isinstance(mixture, dict) and k in mixture:
            notices.append(f"dataset_mixture.{k}: ignored (no evaluation split during SFT)")

"""Open-R1 flat recipes: every key translated, renamed or refused, with notices."""

from __future__ import annotations

import pytest

from pixelctl.config.openr1 import looks_like_open_r1, translate_open_r1
from pixelctl.config.schema import Recipe

# Open-R1's recipes/…/sft/config_demo.yaml shape (trl 0.18 era)
DEMO = {
    "model_name_or_path": "/models/Qwen2.5-VL-7B-Instruct",
    "model_revision": "main",
    "torch_dtype": "bfloat16",
    "attn_implementation": "flash_attention_2",
    "dataset_name": "/data/pixel_reasoner_sft.json",
    "bf16": True,
    "do_eval": False,
    "gradient_accumulation_steps": 4,
    "gradient_checkpointing": True,
    "gradient_checkpointing_kwargs": {"use_reentrant": False},
    "learning_rate": 1.0e-6,
    "lr_scheduler_type": "cosine",
    "max_seq_length": 8192,
    "num_train_epochs": 5,
    "output_dir": "data/x",
    "per_device_train_batch_size": 2,
    "report_to": ["wandb"],
    "save_steps": 100,
    "seed": 42,
    "warmup_ratio": 0.1,
}


def test_demo_recipe_translates_to_a_valid_nested_recipe():
    out, notices = translate_open_r1(DEMO)
    assert out == {
        "model": {
            "name_or_path": "/models/Qwen2.5-VL-7B-Instruct",
            "dtype": "bfloat16",
            "attn_implementation": "flash_attention_2",
        },
        "sft": {
            "data": ["/data/pixel_reasoner_sft.json"],
            "gradient_checkpointing": True,
            "lr": 1.0e-6,
            "lr_scheduler": "cosine",
            "max_length": 8192,
            "epochs": 5,
            "per_device_batch_size": 2,
            "save_steps": 100,
            "seed": 42,
            "warmup_ratio": 0.1,
            "global_batch_size": 8,
        },
    }
    Recipe.model_validate(out)  # the translation is a recipe our schema accepts
    joined = "\n".join(notices)
    assert "torch_dtype → model.dtype (transformers 5 renamed torch_dtype to dtype)" in joined
    assert "max_seq_length → sft.max_length" in joined
    assert "warmup_ratio → sft.warmup_ratio (transformers 5 removed warmup_ratio" in joined
    assert "output_dir: ignored" in joined and "report_to: ignored" in joined
    assert "gradient_accumulation_steps 4 → sft.global_batch_size 8" in joined


def test_dataset_mixture_becomes_data_sources_with_notices_for_weights():
    flat = {
        "dataset_mixture": {
            "datasets": [
                {"id": "/data/a.jsonl", "config": "default", "split": "train", "weight": 1.0},
                {"id": "/data/b.jsonl", "weight": 0.5, "columns": ["messages"]},
            ],
            "seed": 0,
            "test_split_size": 0.1,
        }
    }
    out, notices = translate_open_r1(flat)
    assert out == {"sft": {"data": ["/data/a.jsonl", "/data/b.jsonl"]}}
    assert any("weight 0.5 of /data/b.jsonl ignored" in n for n in notices)
    assert any("dataset_mixture.test_split_size: ignored" in n for n in notices)


def test_schedulers_and_fractional_warmup_steps():
    out, notices = translate_open_r1(
        {"lr_scheduler_type": "cosine_with_min_lr", "warmup_steps": 0.03}
    )
    assert out == {"sft": {"lr_scheduler": "cosine", "warmup_ratio": 0.03}}
    assert len(notices) == 2
    with pytest.raises(ValueError, match="lr_scheduler_type 'polynomial'"):
        translate_open_r1({"lr_scheduler_type": "polynomial"})
    with pytest.raises(ValueError, match="give warmup_ratio"):
        translate_open_r1({"warmup_steps": 50})


def test_unknown_keys_fail_with_a_suggestion():
    with pytest.raises(ValueError, match=r"learnig_rate \(did you mean learning_rate\?\)"):
        translate_open_r1({"learnig_rate": 1e-5})


def test_detection_of_flat_versus_sectioned_recipes():
    assert looks_like_open_r1(DEMO)
    assert not looks_like_open_r1({"model": {}, "sft": {"lr": 1e-6}})
    assert not looks_like_open_r1({})

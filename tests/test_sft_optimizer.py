"""`sft.vision_lr`: how the optimizer's groups are split (the real run is in test_sft_train.py)."""

from __future__ import annotations

import torch

from pixelctl.sft.hf_trainer import split_vision_groups


def test_each_group_splits_into_text_and_vision_parts_and_empty_parts_are_dropped():
    named = {
        "model.visual.blocks.0.attn.qkv.weight": torch.nn.Parameter(torch.zeros(2)),
        "model.visual.merger.ln_q.weight": torch.nn.Parameter(torch.zeros(2)),
        "model.language_model.layers.0.mlp.up_proj.weight": torch.nn.Parameter(torch.zeros(2)),
        "lm_head.weight": torch.nn.Parameter(torch.zeros(2)),
        "model.language_model.norm.weight": torch.nn.Parameter(torch.zeros(2)),
    }
    names = {id(p): n for n, p in named.items()}
    p = list(named.values())
    decay = {"params": [p[0], p[2], p[3]], "weight_decay": 0.1, "lr": 3e-3, "betas": (0.9, 0.95)}
    no_decay = {"params": [p[1], p[4]], "weight_decay": 0.0, "lr": 3e-3, "betas": (0.9, 0.95)}
    text_only = {"params": [p[3]], "weight_decay": 0.0, "lr": 3e-3, "betas": (0.9, 0.95)}

    out = split_vision_groups([decay, no_decay, text_only], names, 1e-3)

    summary = [([names[id(q)] for q in g["params"]], g["lr"], g["weight_decay"]) for g in out]
    assert summary == [
        (["model.language_model.layers.0.mlp.up_proj.weight", "lm_head.weight"], 3e-3, 0.1),
        (["model.visual.blocks.0.attn.qkv.weight"], 1e-3, 0.1),
        (["model.language_model.norm.weight"], 3e-3, 0.0),
        (["model.visual.merger.ln_q.weight"], 1e-3, 0.0),
        (["lm_head.weight"], 3e-3, 0.0),  # no vision part: no empty group
    ]
    assert all(g["betas"] == (0.9, 0.95) for g in out)  # every other setting kept
    assert decay["lr"] == 3e-3 and len(decay["params"]) == 3  # the input is not modified


def test_sft_and_the_local_engine_freeze_the_same_parameters(tiny_model_dir):
    """One definition of the vision tower (`pixelctl.models.qwen.freeze_vision`) for both
    trainers: the local RL policy trains exactly the parameters SFT would."""
    from transformers import AutoModelForImageTextToText

    from pixelctl.engines.local.policy import Policy
    from pixelctl.models.qwen import freeze_vision

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    frozen = freeze_vision(model)
    sft_trained = [n for n, p in model.named_parameters() if p.requires_grad]
    policy = Policy(str(tiny_model_dir), dtype="float32", device="cpu", freeze_vision=True, seed=0)
    ids = {id(p): n for n, p in policy.model.named_parameters()}
    assert [ids[id(p)] for p in policy.trainable()] == sft_trained
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if ".visual." in n) > 0
    assert sft_trained and not any(".visual." in n for n in sft_trained)

"""Shared test fixtures.

Tests never reach a model hub: offline mode is set here, before any test imports
transformers or huggingface_hub (they read it at import time).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2.5-VL (seed 0), built once per test session into a temp folder."""
    from pixelctl.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"), seed=0)

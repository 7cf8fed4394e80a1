"""Recipe loading: every error at once, each naming file, dotted key and fix."""

from pathlib import Path

import pytest
import yaml

from pixelctl.cli.derived import derive
from pixelctl.config import Recipe, RecipeError, load_recipe, schema_paths
from pixelctl.config.report import changes


def write(tmp_path: Path, data: dict, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, list(overrides))
    return info.value.problems


def test_defaults_are_the_paper_values():
    r = Recipe()
    assert (r.rl.reward.alpha, r.rl.reward.beta, r.rl.reward.H, r.rl.reward.N) == (
        0.5,
        0.05,
        0.3,
        1,
    )
    assert (r.rl.optim.clip_low, r.rl.optim.clip_high, r.rl.optim.kl_coef) == (0.2, 0.35, 0.0)
    assert (r.rl.rollout.n_samples, r.rl.rollout.top_p, r.rl.optim.warmup_ratio) == (8, 0.95, 0.03)
    assert (r.sft.lr, r.sft.warmup_ratio, r.sft.mask) == (1e-6, 0.1, "last_two_assistant")
    assert r.executor.bounds.train.image_max_pixels == 2000 * 28 * 28
    assert r.executor.bounds.eval.crop_min_pixels == 256 * 28 * 28
    assert r.executor.bounds.eval.processor_max_pixels == 4_014_080
    assert r.executor.max_operations == 4 and r.executor.max_images == 16


def test_misspelt_override_suggests_the_full_dotted_key(tmp_path):
    msgs = problems(write(tmp_path, {}), ["rl.rollout.n_sample=16"])
    assert msgs == [
        "rl.rollout.n_sample: unknown key (from override rl.rollout.n_sample=16); "
        "did you mean rl.rollout.n_samples?"
    ]


def test_key_in_the_wrong_section_suggests_where_it_lives(tmp_path):
    [msg] = problems(write(tmp_path, {"rl": {"n_samples": 8}}))
    assert msg == "rl.n_samples: unknown key; did you mean rl.rollout.n_samples?"


def test_wrong_type_names_key_value_and_expected_type(tmp_path):
    [msg] = problems(write(tmp_path, {}), ["sft.lr=fast"])
    assert msg.startswith("sft.lr: got 'fast' (from override sft.lr=fast): ")
    assert "expected a number (default 1e-06)" in msg


def test_every_error_is_reported_at_once_with_the_file(tmp_path):
    path = write(tmp_path, {"sft": {"lrr": 1.0, "epochs": -1}, "model": {"dtype": "fp8"}})
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["rl.reward.mode=papr"])
    err = info.value
    assert len(err.problems) == 4
    text = str(err)
    assert text.startswith(f"{path}: 4 problems")
    for key in ("sft.lrr", "sft.epochs", "model.dtype", "rl.reward.mode"):
        assert any(p.startswith(key + ":") for p in err.problems), key
    assert "did you mean sft.lr?" in text


def test_cross_field_check_names_the_fix(tmp_path):
    [msg] = problems(write(tmp_path, {"rl": {"optim": {"batch_size": 300}}}))
    assert msg.startswith("rl: ")
    assert "4096 trajectories is not a multiple of optim.batch_size = 300" in msg


def test_vision_lr_with_a_frozen_tower_is_an_error(tmp_path):
    recipe = {"sft": {"vision_lr": 1.0e-4}}  # model.freeze_vision defaults to true (the paper)
    [msg] = problems(write(tmp_path, recipe))
    assert "sft.vision_lr is set but model.freeze_vision is true" in msg
    assert "set model.freeze_vision: false or remove sft.vision_lr" in msg
    trained = load_recipe(write(tmp_path, {**recipe, "model": {"freeze_vision": False}}))
    assert trained.recipe.sft.vision_lr == 1.0e-4


def test_yaml_scientific_notation_string_becomes_float(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("sft:\n  lr: 1e-6\n")  # PyYAML reads this as a string
    assert load_recipe(path).recipe.sft.lr == 1e-6


@pytest.mark.parametrize(
    ("content", "needle"),
    [("sft: [1, 2", "not valid YAML"), ("- a\n- b\n", "top level must be a mapping")],
)
def test_unreadable_files(tmp_path, content, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(content)
    assert needle in problems(p)[0]


def test_missing_file():
    assert "file not found" in problems(Path("no/such.yaml"))[0]


def test_sources_default_recipe_override(tmp_path):
    loaded = load_recipe(write(tmp_path, {"sft": {"lr": 2.0e-6}}), ["rl.rollout.n_samples=4"])
    assert loaded.source_of("sft.lr") == "recipe"
    assert loaded.source_of("rl.rollout.n_samples") == "override"
    assert loaded.source_of("sft.epochs") == "default"
    got = {c.key: (c.value, c.default, c.source) for c in changes(loaded)}
    assert got == {"sft.lr": (2e-6, 1e-6, "recipe"), "rl.rollout.n_samples": (4, 8, "override")}
    assert [c.key for c in changes(loaded, "sft")] == ["sft.lr"]


def test_schema_paths_cover_nested_keys():
    paths = schema_paths(Recipe)
    assert "rl.rollout.n_samples" in paths and "executor.bounds.eval.crop_max_pixels" in paths
    assert "eval.benchmarks" in paths and "eval.benchmarks.name" not in paths


def test_derived_numbers_of_the_paper_run():
    numbers, issues = derive(Recipe())
    got = {(d.stage, d.name): d.value for d in numbers}
    assert issues == []
    assert got[("rl", "trajectories per round")] == 4096
    assert got[("rl", "optimizer steps per round")] == 16
    assert got[("rl", "rounds")] == 90  # ceil(15000/512) = 30 rounds × 3 episodes
    # each episode's last round has 152 prompts: 1216 trajectories, 4 steps (rl.schedule)
    assert got[("rl", "total optimizer steps")] == 3 * (29 * 16 + 4) == 1404
    assert got[("rl", "gradient accumulation")] == 2  # 256 / (4 × 32)
    assert got[("rl", "GPUs needed")] == got[("rl", "GPUs declared")] == 32
    assert got[("sft", "gradient accumulation")] == 16  # 128 / (1 × 8)


def test_derived_problems_name_the_fix():
    r = Recipe.model_validate(
        {
            "sft": {"global_batch_size": 12, "per_device_batch_size": 1},
            "launch": {"rl": {"vllm_engines": 40}},
        }
    )
    _, issues = derive(r)
    assert any(
        p.startswith("sft.global_batch_size=12 is not a multiple") and "use 8" in p for p in issues
    )
    assert any("40 GPUs do not fit the 32 declared" in p for p in issues)


def test_not_colocated_engines_take_their_own_gpus():
    r = Recipe.model_validate(
        {
            "launch": {"rl": {"colocate": False, "vllm_engines": 8}},
            "rl": {
                "optim": {"batch_size": 96, "micro_batch_size": 4},
                "rollout": {"prompts_per_round": 12},
            },
        }
    )
    numbers, issues = derive(r)
    got = {(d.stage, d.name): d.value for d in numbers}
    assert issues == []
    assert got[("rl", "GPUs needed")] == 32
    assert got[("rl", "gradient accumulation")] == 1  # 96 / (4 × 24 actor GPUs)


def test_open_r1_flat_recipe_is_translated_with_notices(tmp_path):
    path = tmp_path / "openr1.yaml"
    path.write_text(
        "model_name_or_path: /models/qwen\ntorch_dtype: bfloat16\nlearning_rate: 2.0e-5\n"
        "max_seq_length: 4096\nwarmup_ratio: 0.05\noutput_dir: data/out\n"
    )
    loaded = load_recipe(path)
    r = loaded.recipe
    assert (r.model.name_or_path, r.model.dtype) == ("/models/qwen", "bfloat16")
    assert (r.sft.lr, r.sft.max_length, r.sft.warmup_ratio) == (2e-5, 4096, 0.05)
    text = "\n".join(loaded.notices)
    assert loaded.notices[0] == f"{path}: Open-R1-style keys translated"
    assert "torch_dtype" in text and "max_seq_length" in text and "output_dir" in text


def test_open_r1_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "openr1.yaml"
    path.write_text("model_name_or_path: /m\nlearning_rat: 1.0\n")
    [msg] = problems(path)
    assert msg.startswith("Open-R1-style recipe: unknown Open-R1 keys: learning_rat")
    assert "did you mean learning_rate?" in msg

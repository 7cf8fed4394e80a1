"""`pixelctl eval recipes/eval_released.yaml --fetch`: the released checkpoints on the authors'
eval sets, fetched through `huggingface_hub` from a fake hub on loopback (tests/helpers/
fake_hub.py serves a local folder laid out like the hub's repositories; the real client does
every request, so the download, resume and local-dir code is the one a user runs). The real
hub is never contacted: the client's endpoint is the loopback server, or it is offline.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import huggingface_hub.constants
import pytest
from typer.testing import CliRunner

from pixelctl import hub
from pixelctl.cli.app import app
from pixelctl.config import RecipeError, load_recipe
from pixelctl.evaluation import released
from pixelctl.evaluation.loaders import load_source
from pixelctl.stages import eval as eval_stage
from tests.helpers import eval_fixtures as fx
from tests.helpers.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "eval_released.yaml"
VSTAR = "JasperHaozhe/VStar-EvalData-PixelReasoner"
RL = "TIGER-Lab/PixelReasoner-RL-v1"


def _vstar_repo(root: Path, big: int = 0) -> Path:
    """The authors' layout: `vstar.parquet` + `images.zip` (images/…; `big` extra bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "datasets" / VSTAR
    staging = root / "staging"
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        fx.image(staging / "images" / f"sa_{i}.jpg", colour)
    rows = [
        {"qid": f"vstar-{i}", "question": "What is the colour? (A) red (B) blue",
         "image": [f"images/sa_{i}.jpg"], "answer": "AB"[i], "is_video": False}
        for i in range(2)
    ]  # fmt: skip
    repo.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), repo / "vstar.parquet")
    with zipfile.ZipFile(repo / "images.zip", "w") as zf:
        for p in sorted((staging / "images").iterdir()):
            zf.write(p, f"images/{p.name}")
        if big:  # stored, not deflated: the transfer really is this long
            zf.writestr(zipfile.ZipInfo("images/padding.bin"), bytes(big))
    return repo


def _model_repo(root: Path, model_dir: Path | None = None) -> Path:
    repo = root / "models" / RL
    if model_dir is None:
        repo.mkdir(parents=True)
        (repo / "config.json").write_text("{}")
    else:
        shutil.copytree(model_dir, repo)
    return repo


@pytest.fixture
def online(monkeypatch):
    """The client online, but only towards the loopback hub the test starts."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def start(root: Path) -> FakeHub:
        fake = FakeHub(root)
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        return fake

    return start


def _loaded(cache: Path, *extra: str):
    return load_recipe(
        RECIPE, [f"eval.released.cache_dir={cache}", "eval.released.benchmarks=[vstar]", *extra]
    )


def _gets(fake: FakeHub, name: str) -> list[tuple[str, str, str | None]]:
    return [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/" + name)]


def test_recipe_points_every_stage_input_at_the_cache(tmp_path: Path) -> None:
    ev = load_recipe(RECIPE, [f"eval.released.cache_dir={tmp_path}"]).recipe.eval
    assert ev.checkpoint_path() == str(tmp_path / RL)
    assert [(s.name, s.path, s.layout, s.limit) for s in ev.sources()] == [
        (n, str(tmp_path / hub.EVAL_DATA[n]), "authors", None)
        for n in ("vstar", "tallyqa", "infovqa", "mvbench")
    ]
    warm = _loaded(tmp_path, "eval.released.checkpoint=warmstart", "eval.released.limit=4")
    assert warm.recipe.eval.checkpoint_path() == str(tmp_path / "TIGER-Lab/PixelReasoner-WarmStart")
    assert warm.recipe.eval.sources()[0].limit == 4
    assert released.released_title(warm.recipe.eval).endswith("(its row: SFT only)")
    assert [r.repo_id for r in released.repos(warm.recipe.eval)] == [
        "TIGER-Lab/PixelReasoner-WarmStart",
        VSTAR,
    ]
    with pytest.raises(RecipeError, match=r"eval\.released chooses the checkpoint"):
        _loaded(tmp_path, "eval.checkpoint=/models/x")


def test_fetch_then_second_run_makes_no_request(tmp_path: Path, online) -> None:
    _vstar_repo(tmp_path / "hub")
    _model_repo(tmp_path / "hub")
    cache = tmp_path / "cache"
    loaded = _loaded(cache)
    with pytest.raises(RecipeError, match=r"fetch it first: pixelctl eval .*eval_released\.yaml"):
        eval_stage.preflight(loaded)
    log: list[str] = []
    with online(tmp_path / "hub") as fake:
        released.fetch_released(loaded, log=log.append)
        data = cache / VSTAR
        assert (data / "images" / "sa_1.jpg").read_bytes() == (
            tmp_path / "hub" / "staging" / "images" / "sa_1.jpg"
        ).read_bytes()
        assert json.loads((data / hub.MARKER).read_text())["unpacked"] == ["images.zip"]
        assert f"{VSTAR}: unpacked images.zip" in log
        eval_stage.preflight(loaded)  # everything in place now
        [src] = loaded.recipe.eval.sources()
        queries = load_source(src.name, src.path, src.layout, src.limit)
        assert [(q.qid, q.answer, Path(q.images[0]).name) for q in queries] == [
            ("vstar-0", "A", "sa_0.jpg"),
            ("vstar-1", "B", "sa_1.jpg"),
        ]
        fake.requests.clear()
        released.fetch_released(loaded, log=log.append)
        assert fake.requests == []  # found in place: not even the commit is asked for
    assert log[-2:] == [f"{RL}: in place ({cache / RL})", f"{VSTAR}: in place ({data})"]


def test_interrupted_download_resumes_without_refetching_finished_files(
    tmp_path: Path, online
) -> None:
    repo = _vstar_repo(tmp_path / "hub", big=12 << 20)  # > the client's 10 MiB read chunk
    repo_zip = (repo / "images.zip").read_bytes()
    target = tmp_path / "cache" / VSTAR
    item = [hub.HubRepo(VSTAR, "dataset", target)]
    with online(tmp_path / "hub") as fake:
        fake.break_after["images.zip"] = 11 << 20  # the connection drops, then the hub errs
        with pytest.raises(hub.HubUnavailable, match="could not download JasperHaozhe/VStar"):
            hub.fetch(item)
        assert (target / "vstar.parquet").is_file() and not hub.is_fetched(target)
        assert not (target / "images.zip").exists()  # a file is in place whole or not at all
        fake.broken.clear()
        fake.requests.clear()
        hub.fetch(item)
        assert _gets(fake, "vstar.parquet") == []  # finished before the break: kept
        assert len(_gets(fake, "images.zip")) == 1
    assert (target / "images.zip").read_bytes() == repo_zip
    assert (target / "images" / "padding.bin").stat().st_size == 12 << 20
    assert hub.is_fetched(target)


def test_offline_fetch_fails_fast_with_the_commands(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    res = CliRunner().invoke(
        app,
        ["eval", str(RECIPE), "--fetch", f"eval.released.cache_dir={cache}",
         f"launch.runs_root={runs}"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert (
        f"pixelctl eval --fetch: could not download {RL}: the hub is not reachable from here "
        "(OfflineModeIsEnabled). Nothing else was fetched." in res.output
    )
    assert f"  hf download {RL} --local-dir released/{RL}\n" in res.output
    for name in ("VStar", "TallyQA", "InfoVQA", "MVBench"):
        repo = f"JasperHaozhe/{name}-EvalData-PixelReasoner"
        assert f"  hf download --repo-type dataset {repo} --local-dir released/{repo}\n" in (
            res.output
        )
        assert f"  {cache / repo}\n" in res.output
    assert f"then copy the folder released/ to {cache}/ on this machine" in res.output
    assert f"pixelctl eval {RECIPE} --fetch eval.released.cache_dir={cache}" in res.output
    assert not runs.exists()  # refused before any run directory


def test_offline_accepts_folders_copied_by_hand(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "cache"
    shutil.copytree(_vstar_repo(tmp_path / "hub"), cache / VSTAR)
    shutil.copytree(_model_repo(tmp_path / "hub"), cache / RL)
    released.fetch_released(_loaded(cache), log=lambda _m: None)
    assert (cache / VSTAR / "images" / "sa_0.jpg").is_file()
    assert json.loads((cache / VSTAR / hub.MARKER).read_text())["source"] == "copied"


def test_a_half_downloaded_folder_is_not_taken_as_copied(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    target = tmp_path / "cache" / VSTAR
    shutil.copytree(_vstar_repo(tmp_path / "hub"), target)
    trees = target / ".cache" / "huggingface" / "trees"
    trees.mkdir(parents=True)  # the client's listing says two files; one is missing
    listing = {"vstar.parquet": {"size": 1}, "images.zip": {"size": 1}}
    (trees / "abc.json").write_text(json.dumps({"format_version": 1, "files": listing}))
    with pytest.raises(hub.HubUnavailable, match="not reachable"):
        hub.fetch([hub.HubRepo(VSTAR, "dataset", target)])
    assert not hub.is_fetched(target)


def test_unpack_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="escapes"):
        hub.unpack_zips(tmp_path)
    assert not (tmp_path.parent / "outside.txt").exists()


@pytest.mark.slow
def test_released_smoke_on_cpu_with_the_tiny_model(
    tmp_path: Path, online, tiny_model_dir: Path
) -> None:
    """The whole command: fetch (fake hub), hf backend on CPU, limit 2, table with RaPR."""
    _vstar_repo(tmp_path / "hub")
    _model_repo(tmp_path / "hub", tiny_model_dir)
    args = ["eval", str(RECIPE), "--fetch", f"eval.released.cache_dir={tmp_path / 'cache'}",
            "eval.released.benchmarks=[vstar]", "eval.released.limit=2", "eval.backend=hf",
            "eval.workers=1", "eval.max_new_tokens=8", "launch.device=cpu",
            "model.dtype=float32", f"launch.runs_root={tmp_path / 'runs'}"]  # fmt: skip
    with online(tmp_path / "hub"):
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"{RL} vs. paper Table 1 (its row: Pixel Reasoner)" in res.output
    assert "RaPR" in res.output and "78.5" in res.output
    [run] = [p for p in (tmp_path / "runs" / "eval").iterdir() if not p.is_symlink()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["vstar"]["n"] == 2 and "tool_use_rate" in metrics["vstar"]

"""The authors' released checkpoints on their eval sets: what `eval.released` needs, fetched.

`eval.released` names a checkpoint (`rl`: TIGER-Lab/PixelReasoner-RL-v1, the paper's Pixel
Reasoner row; `warmstart`: TIGER-Lab/PixelReasoner-WarmStart, the SFT-only row) and which of
the authors' eval sets (`JasperHaozhe/<Name>-EvalData-PixelReasoner`: a parquet and an
`images.zip`, read with `layout: authors` once unpacked). `pixelctl eval RECIPE --fetch`
brings whatever is missing into the cache through `pixelctl.hub`; without `--fetch` a run
refuses before its run directory exists and says which folders are missing.
"""

from __future__ import annotations

from collections.abc import Callable

from pixelctl.config import LoadedRecipe, RecipeError
from pixelctl.config.schema import EvalConfig
from pixelctl.hub import EVAL_DATA, MODELS, HubRepo, cache_dir, fetch, is_fetched, local_dir

PAPER_ROW = {"rl": "Pixel Reasoner", "warmstart": "SFT only"}


def repos(ev: EvalConfig) -> list[HubRepo]:
    """The model and the eval sets `eval.released` needs, each with its cache folder."""
    if ev.released is None:
        return []
    cache = cache_dir(ev.released.cache_dir)
    model = MODELS[ev.released.checkpoint]
    out = [HubRepo(model, "model", local_dir(cache, model))]
    for name in ev.released.benchmarks:
        out.append(HubRepo(EVAL_DATA[name], "dataset", local_dir(cache, EVAL_DATA[name])))
    return out


def _rerun(loaded: LoadedRecipe) -> str:
    overrides = "".join(f" {o.text}" for o in loaded.overrides)
    return f"pixelctl eval {loaded.path or 'RECIPE.yaml'} --fetch{overrides}"


def require_fetched(loaded: LoadedRecipe) -> None:
    """Refuse a released-checkpoint run whose model or data is not in the cache yet."""
    missing = [r for r in repos(loaded.recipe.eval) if not is_fetched(r.target)]
    if missing:
        raise RecipeError(
            str(loaded.path or "<recipe>"),
            [f"{r.repo_id} is not in the cache ({r.target})" for r in missing]
            + [f"fetch it first: {_rerun(loaded)} (offline, it prints how to copy it here)"],
        )


def fetch_released(
    loaded: LoadedRecipe, *, log: Callable[[str], None], download=None
) -> list[HubRepo]:
    """Fetch what `eval.released` needs and is not in the cache; `HubUnavailable` offline."""
    ev = loaded.recipe.eval
    needed = repos(ev)
    if needed:
        fetch(
            needed,
            download=download,
            log=log,
            cache=cache_dir(ev.released.cache_dir),
            rerun=_rerun(loaded),
        )
    return needed


def released_title(ev: EvalConfig) -> str:
    """The table's title: which checkpoint, and which paper column is its own."""
    if ev.released is None:
        return "pixelctl eval vs. paper Table 1"
    row = PAPER_ROW[ev.released.checkpoint]
    return f"{MODELS[ev.released.checkpoint]} vs. paper Table 1 (its row: {row})"

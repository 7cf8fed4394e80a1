"""Load a recipe: YAML file → overrides → schema, with every problem reported at once.

Each error names the file, the dotted key, what was wrong and how to fix it; an unknown key gets
a did-you-mean over the schema's full dotted paths (so `rl.n_samples` suggests
`rl.rollout.n_samples`).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pixelctl.config.overrides import Override, apply_overrides, parse_override
from pixelctl.config.schema import Recipe


class RecipeError(Exception):
    """A recipe that cannot be used; `problems` holds one line per error, all of them."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        n = len(problems)
        head = f"{source}: {n} problem{'s' if n != 1 else ''}"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


@dataclass
class LoadedRecipe:
    recipe: Recipe
    path: Path | None
    raw: dict[str, Any]  # the file's mapping, before overrides
    overrides: list[Override] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. Open-R1 keys translated

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "recipe"

    def source_of(self, dotted: str) -> str:
        """'override', 'recipe' or 'default': where the value at `dotted` came from."""
        parts = dotted.split(".")
        for ov in reversed(self.overrides):
            if parts[: len(ov.path)] == list(ov.path):
                return "override"
        node: Any = self.raw
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return "default"
            node = node[part]
        return "recipe"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file; a missing file, a folder, a binary file, an empty file, bad YAML or a
    non-mapping is a RecipeError (an empty recipe is not silently the paper's 7B run)."""
    example = "pass a recipe such as recipes/tiny_cpu.yaml"
    if path.is_dir():
        raise RecipeError(str(path), [f"is a folder, not a recipe file; {example}"])
    if not path.is_file():
        raise RecipeError(str(path), [f"file not found; {example}"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            str(path), [f"not a text file (byte {exc.start} is not UTF-8); {example}"]
        ) from None
    except OSError as exc:
        raise RecipeError(str(path), [f"cannot read it ({exc.strerror}); {example}"]) from None
    if "\x00" in text:
        raise RecipeError(str(path), [f"not a text file (it holds NUL bytes); {example}"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(str(path), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        raise RecipeError(
            str(path),
            [
                "the recipe is empty; write at least one section (model, sft, …). For the "
                "paper's defaults say so explicitly, e.g. copy recipes/7b_a800.yaml"
            ],
        )
    if not isinstance(data, dict):
        raise RecipeError(
            str(path), ["the top level must be a mapping of sections (model, sft, …)"]
        )
    return data


def load_recipe(
    path: Path | str | None, overrides: list[str] | None = None, *, raw: dict | None = None
) -> LoadedRecipe:
    """Load and validate a recipe file (or a raw mapping) with `key=value` overrides."""
    path = Path(path) if path is not None else None
    source = str(path) if path else "<recipe>"
    base = raw if raw is not None else (read_yaml(path) if path else {})
    base, notices = _translate_open_r1(base, source)
    parsed, problems = [], []
    for text in overrides or []:
        try:
            parsed.append(parse_override(text))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise RecipeError(source, problems)
    try:
        merged = apply_overrides(base, parsed)
    except ValueError as exc:
        raise RecipeError(source, [str(exc)]) from exc
    try:
        recipe = Recipe.model_validate(merged)
    except ValidationError as exc:
        loaded = LoadedRecipe(Recipe(), path, base, parsed)
        raise RecipeError(source, [_describe(e, loaded) for e in exc.errors()]) from None
    return LoadedRecipe(recipe, path, base, parsed, notices)


def _translate_open_r1(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """Accept an Open-R1-style flat SFT config (its `sft.py` recipes) by translating its keys."""
    from pixelctl.config.openr1 import looks_like_open_r1, translate_open_r1

    if not looks_like_open_r1(raw):
        return raw, []
    try:
        nested, notices = translate_open_r1(raw)
    except ValueError as exc:
        raise RecipeError(source, [f"Open-R1-style recipe: {exc}"]) from None
    return nested, [f"{source}: Open-R1-style keys translated", *notices]


# ----------------------------------------------------------------------------- error messages
def _describe(err: dict[str, Any], loaded: LoadedRecipe) -> str:
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(loc) or "(top level)"
    origin = _origin(dotted, loaded)
    if err["type"] == "extra_forbidden":
        hint = _suggest(loc)
        fix = f"did you mean {hint}?" if hint else "remove it (see `pixelctl validate --help`)"
        return f"{dotted}: unknown key{origin}; {fix}"
    if err["type"] == "missing":
        return f"{dotted}: required key is missing{origin}; add it"
    got = err.get("input")
    expected = _expected(loc)
    where = f"{dotted}: " if loc else ""
    msg = err["msg"].removeprefix("Value error, ")
    fix = f"; expected {expected}" if expected else ""
    shown = "" if isinstance(got, dict) else f"got {got!r}{origin}: "
    return f"{where}{shown}{msg}{fix}"


def _origin(dotted: str, loaded: LoadedRecipe) -> str:
    for ov in reversed(loaded.overrides):
        if dotted == ov.key or dotted.startswith(ov.key + "."):
            return f" (from override {ov.text})"
    return ""


def _suggest(loc: list[str]) -> str | None:
    """The closest valid dotted path: same section first, then anywhere with the same leaf."""
    paths = schema_paths(Recipe)
    parent, leaf = ".".join(loc[:-1]), loc[-1]
    prefix = f"{parent}." if parent else ""
    siblings = [p for p in paths if p.startswith(prefix) and "." not in p[len(prefix) :]]
    near = difflib.get_close_matches(prefix + leaf, siblings, n=1, cutoff=0.75)
    if near:
        return near[0]
    for p in paths:  # the key exists, but in a nested section: rl.n_samples → rl.rollout.n_samples
        if p.startswith(prefix) and p.rsplit(".", 1)[-1] == leaf:
            return p
    fuzzy = [p for p in paths if p.startswith(prefix)]
    leaves = {p.rsplit(".", 1)[-1]: p for p in fuzzy}
    near = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
    return leaves[near[0]] if near else None


def schema_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts (sections and leaves; list items are not expanded)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        out.append(dotted)
        sub = _model_type(info.annotation)
        if sub is not None and not _is_list(info.annotation):
            out.extend(schema_paths(sub, dotted + "."))
    return out


def _expected(loc: list[str]) -> str | None:
    model: type[BaseModel] | None = Recipe
    info = None
    for part in loc:
        if model is None:
            return None
        if part.isdigit():
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _model_type(info.annotation)
    if info is None or model is not None:
        return None
    return _type_name(info.annotation) + (f" (default {info.default!r})" if info.default else "")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(tp))
    return {
        "float": "a number",
        "int": "a whole number",
        "bool": "true or false",
        "str": "a string",
        "NoneType": "null",
    }.get(getattr(tp, "__name__", ""), str(tp))


def _model_type(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_type(arg)
        if found is not None:
            return found
    return None


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) in (list, tuple)

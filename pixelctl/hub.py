"""The released models and data, fetched once from the Hugging Face Hub into a local cache.

One code path for every download pixelctl makes (`pixelctl eval --fetch`, `pixelctl reproduce
--fetch-data`): `huggingface_hub.snapshot_download` into `<cache>/<owner>/<name>` (a partial
download resumes: the client keeps `.incomplete` files under the folder's `.cache/`), then
every top-level `*.zip` is unpacked beside it (member by member, skipping members already out
with the right size, so an interrupted unpack resumes too), then a marker file is written. A
folder with the marker is never fetched again, so a second run makes no network call at all.

Without network (or with `HF_HUB_OFFLINE=1`) `fetch` fails fast with `HubUnavailable`, whose
message lists the exact `hf download` commands to run where the hub is reachable and the
folder each result must be copied to. A folder copied there by hand (no marker, no
`.incomplete` file) is accepted offline: it is unpacked and marked like a download.

Pure at import: `huggingface_hub` is imported by the function that downloads.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MARKER = ".pixelctl-fetched"  # JSON inside; no suffix, so data loaders never read it

MODELS = {
    "rl": "TIGER-Lab/PixelReasoner-RL-v1",
    "warmstart": "TIGER-Lab/PixelReasoner-WarmStart",
}
EVAL_DATA = {
    "vstar": "JasperHaozhe/VStar-EvalData-PixelReasoner",
    "tallyqa": "JasperHaozhe/TallyQA-EvalData-PixelReasoner",
    "infovqa": "JasperHaozhe/InfoVQA-EvalData-PixelReasoner",
    "mvbench": "JasperHaozhe/MVBench-EvalData-PixelReasoner",
}


class HubUnavailable(RuntimeError):
    """The hub cannot be reached from here; the message says how to fetch elsewhere."""


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    repo_type: str  # "model" or "dataset"
    target: Path

    def command(self, base: str = "released") -> str:
        """The `hf download` line that fetches this repository into `base/<owner>/<name>`."""
        kind = " --repo-type dataset" if self.repo_type == "dataset" else ""
        return f"hf download{kind} {self.repo_id} --local-dir {base}/{self.repo_id}"


def default_cache() -> Path:
    """`$PIXELCTL_CACHE/released` (default `~/.cache/pixelctl/released`)."""
    env = os.environ.get("PIXELCTL_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "pixelctl"
    return base / "released"


def cache_dir(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_cache()


def local_dir(cache: Path, repo_id: str) -> Path:
    """Where a repository lives in the cache: `<cache>/<owner>/<name>`, as on the hub."""
    return cache / repo_id


def is_fetched(target: Path) -> bool:
    return (target / MARKER).is_file()


def _partial(target: Path) -> bool:
    """A download the client left unfinished (its resumable `.incomplete` files)."""
    return any((target / ".cache").rglob("*.incomplete")) if (target / ".cache").is_dir() else False


def _looks_complete(target: Path) -> bool:
    """A folder usable as it is: non-empty, nothing half-downloaded, and every file of the
    client's cached tree listing (`.cache/huggingface/trees/*.json`, written before any file
    is fetched) present with its size. A folder without a listing (copied some other way)
    only has to be non-empty."""
    if not target.is_dir() or _partial(target):
        return False
    if not any(p.name not in (".cache", MARKER) for p in target.iterdir()):
        return False
    trees = sorted((target / ".cache" / "huggingface" / "trees").glob("*.json"))
    for tree in trees:
        try:
            files = json.loads(tree.read_text())["files"]
        except (OSError, ValueError, KeyError):
            return False
        for rel, entry in files.items():
            f = target / rel
            if not f.is_file() or f.stat().st_size != entry.get("size"):
                return False
    return True


def unpack_zips(target: Path) -> list[str]:
    """Unpack every top-level `*.zip` of `target` into `target`; returns the zips' names.

    Members already extracted with the right size are skipped, so a killed unpack resumes;
    a member that would land outside `target` is refused (zip-slip)."""
    done = []
    root = target.resolve()
    for archive in sorted(target.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                out = (root / info.filename).resolve()
                if not out.is_relative_to(root):
                    raise ValueError(f"{archive}: member {info.filename!r} escapes {target}")
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                if out.is_file() and out.stat().st_size == info.file_size:
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".unzipping")
                with zf.open(info) as src, tmp.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                tmp.replace(out)
        done.append(archive.name)
    return done


def _mark(repo: HubRepo, source: str, zips: list[str]) -> None:
    files = sorted(
        str(p.relative_to(repo.target))
        for p in repo.target.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(repo.target).parts and p.name != MARKER
    )
    info = {"repo_id": repo.repo_id, "repo_type": repo.repo_type, "source": source,
            "unpacked": zips, "files": len(files)}  # fmt: skip
    (repo.target / MARKER).write_text(json.dumps(info, indent=2) + "\n")


def hub_download(*, repo_id: str, repo_type: str, local_dir: str) -> None:
    """`snapshot_download` into `local_dir`, honouring `HF_ENDPOINT` read now (not at import).

    The commit is asked for first: offline, `snapshot_download` alone returns a non-empty
    `local_dir` as it is (a half-finished download included) with only a warning."""
    from huggingface_hub import HfApi, snapshot_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    sha = HfApi(endpoint=endpoint).repo_info(repo_id, repo_type=repo_type).sha
    snapshot_download(
        repo_id=repo_id, repo_type=repo_type, revision=sha, local_dir=local_dir, endpoint=endpoint
    )
    if _partial(Path(local_dir)):
        raise RuntimeError(f"{local_dir}: the download left unfinished files; run it again")


def _offline(exc: BaseException) -> bool:
    """Errors that mean "the hub is not reachable from here" (vs. a wrong repository id)."""
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout",
            "TimeoutException", "ReadTimeout", "ProxyError", "gaierror", "ConnectionError",
            "ConnectionRefusedError", "ReadError", "RemoteProtocolError",
        }
    )  # fmt: skip


def _chain(exc: BaseException | None) -> Iterable[BaseException]:
    """The error and its explicit causes (`raise … from`), not what it happened during."""
    seen = 0
    while exc is not None and seen < 10:
        yield exc
        exc, seen = exc.__cause__, seen + 1


def instructions(repos: list[HubRepo], cache: Path, rerun: str) -> str:
    """The exact commands to fetch `repos` elsewhere, and where the results go here."""
    return "\n".join(
        [
            "On a machine that reaches huggingface.co (pip install -U huggingface_hub):",
            *(f"  {r.command()}" for r in repos),
            f"then copy the folder released/ to {cache}/ on this machine, e.g.",
            f"  rsync -a released/ THIS_HOST:{cache}/",
            "so that these folders exist:",
            *(f"  {r.target}" for r in repos),
            f"and run `{rerun}` again: it checks the files and unpacks the image zips.",
        ]
    )


def fetch(
    repos: list[HubRepo],
    *,
    download: Callable[..., object] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    cache: Path | None = None,
    rerun: str = "the same command",
) -> list[Path]:
    """Make every repository complete in its target folder; fetch only what is missing."""
    download = download or hub_download
    todo = [r for r in repos if not is_fetched(r.target)]
    for r in repos:
        if r not in todo:
            log(f"{r.repo_id}: in place ({r.target})")
    for i, repo in enumerate(todo):
        repo.target.mkdir(parents=True, exist_ok=True)
        log(f"{repo.repo_id}: fetching into {repo.target}")
        try:
            download(repo_id=repo.repo_id, repo_type=repo.repo_type, local_dir=str(repo.target))
            source = "hub"
        except Exception as exc:  # any failure: classified below, re-raised with the fix
            if not _offline(exc):
                raise HubUnavailable(
                    f"could not download {repo.repo_id} ({type(exc).__name__}: {exc})"
                ) from None
            if _looks_complete(repo.target):
                source = "copied"
            else:
                missing = [r for r in todo[i:] if not _looks_complete(r.target)]
                where = cache or repo.target.parent.parent
                raise HubUnavailable(
                    f"could not download {repo.repo_id}: the hub is not reachable from here "
                    f"({type(exc).__name__}). Nothing else was fetched.\n"
                    + instructions(missing, where, rerun)
                ) from None
        zips = unpack_zips(repo.target)
        if zips:
            log(f"{repo.repo_id}: unpacked {', '.join(zips)}")
        _mark(repo, source, zips)
    return [r.target for r in repos]

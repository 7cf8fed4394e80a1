"""Run directories: one per stage run, never overwritten, resumable.

Layout (STYLE.md): `runs/<stage>/<recipe>-<YYYYmmdd-HHMMSS>[-tag]/` holding the resolved
`config.yaml`, a re-runnable `command.sh`, `meta.json` (versions, git sha, host, pid, devices,
start/end, exit status) and an append-only `metrics.jsonl`. Stages put samples, checkpoints and
logs beside them.

The rules every command follows (one implementation, here):
- `<recipe>-latest` (`<recipe>-<tag>-latest` for a `--tag`ged run) points at the latest run that
  finished well: status `ok` and holding what the next stage reads (`STAGE_OUTPUTS`). It moves in
  `finish`, never at creation, so a crashed or interrupted run never takes it over.
- Two runs started in the same second get `-2`, `-3`, … suffixes; nothing is overwritten.
- A run whose `meta.json` says `running` while its process (pid, host and process start time)
  is gone was killed: `effective_status` reports `killed`, with the resume command.
- `metrics.jsonl` never holds a step twice: a resume rewinds it to the checkpoint's step
  (`rewind_metrics`), leaving one `{"event": "resume"}` marker line that readers skip.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from pixelctl import __version__
from pixelctl.envinfo import devices, git_state, package_versions


class RunDirError(Exception):
    """A run directory that cannot be created or resumed, with what to do instead."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# What the next stage reads from a run; `-latest` moves only to a run that holds all of it.
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "synth": ("sft.jsonl", "rl.jsonl"),
    "sft": ("model/config.json",),
    "rl": ("checkpoints/final/config.json",),
    "eval": ("metrics.json",),
}


def latest_name(recipe_name: str, tag: str | None = None) -> str:
    """The chain link a run moves when it finishes well: `<recipe>[-<tag>]-latest`."""
    return f"{recipe_name}-{tag}-latest" if tag else f"{recipe_name}-latest"


def resume_command(path: Path | str, stage: str) -> str:
    return f"pixelctl {stage} --resume {shlex.quote(str(path))}"


# ---------------------------------------------------------------------------- process identity
def _process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc), None if unknown/gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of stat; the name may hold spaces


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_identity() -> dict[str, Any]:
    """What tells this process apart from a later one with the same pid."""
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "process_start": _process_start(pid),
    }


def process_alive(meta: Mapping[str, Any]) -> bool | None:
    """Whether the process recorded in `meta` still runs: True, False, or None (another host)."""
    pid = meta.get("pid")
    if not isinstance(pid, int):
        return None
    if meta.get("host") != socket.gethostname():
        return None
    if meta.get("boot_id") and _boot_id() and meta["boot_id"] != _boot_id():
        return False  # the machine rebooted since
    if Path("/proc").is_dir() and meta.get("process_start") is not None:
        return _process_start(pid) == meta["process_start"]  # None (gone) or pid reused: False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(meta: Mapping[str, Any]) -> str:
    """meta's status, except `running` whose process is gone reads `killed`."""
    status = str(meta.get("status") or "unknown")
    if status == "running" and process_alive(meta) is False:
        return "killed"
    return status


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def status_line(path: Path | str) -> str | None:
    """One line for a run that did not finish well (killed, interrupted, failed, running), with
    how to continue it; None for a finished or unknown folder."""
    path = Path(path)
    meta = read_meta(path)
    if meta is None or meta.get("stage") not in STAGE_OUTPUTS:
        return None
    status = effective_status(meta)
    if status == "ok":
        return None
    stage = str(meta["stage"])
    if status == "running":
        where = f"pid {meta.get('pid')} on {meta.get('host')}"
        return f"{path}: still running ({where})"
    why = {
        "killed": "was killed (meta.json says running, but its process is gone)",
        "interrupted": "was interrupted",
        "failed": f"failed ({meta.get('error') or 'see its log'})",
    }.get(status, f"has status {status}")
    return f"{path}: {why}; continue it with `{resume_command(path, stage)}`"


def missing_outputs(path: Path, stage: str) -> list[str]:
    return [rel for rel in STAGE_OUTPUTS.get(stage, ()) if not (path / rel).is_file()]


# ---------------------------------------------------------------------------- chain links
def _link_part(path: Path) -> Path | None:
    """The `*-latest` component of `path` (the path up to it), if any."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part.endswith("-latest"):
            return Path(*parts[: i + 1])
    return None


def resolve_link(path: Path | str) -> tuple[Path, str]:
    """Where a chain path (`runs/rl/tiny_cpu-latest[/…]`) leads, and one line saying which run
    it took. A missing link names the newest run of that recipe that did not finish well (and
    how to resume it), so `no such file` never hides a killed run."""
    path = Path(path)
    link = _link_part(path)
    if link is None:
        return path, f"{path}"
    if link.is_symlink() and link.exists():
        target = link.resolve()
        meta = read_meta(target) or {}
        note = f"{link} → {target.name} ({effective_status(meta)}, finished {meta.get('end')})"
        return path, note
    prefix = link.name[: -len("latest")]
    runs = sorted(
        (p for p in link.parent.glob(f"{prefix}*") if p.is_dir() and not p.is_symlink()),
        key=lambda p: p.name,
    )
    newest = runs[-1] if runs else None
    line = status_line(newest) if newest is not None else None
    hint = f"; the newest run: {line}" if line else ""
    return path, f"{link} does not exist yet (no run of that recipe finished well){hint}"


def chain_paths(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, path) for every string value of the recipe that goes through a -latest link."""
    out: list[tuple[str, str]] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and _link_part(Path(node)) is not None:
            out.append((key, node))

    walk(config, "")
    return out


@dataclass
class RunDir:
    path: Path
    stage: str
    resumed_status: str | None = None  # the status a resumed run had (killed, interrupted, …)
    restart: bool = False  # `--resume RUN --restart`: start the run again from step 0
    latest_note: str | None = None  # what `finish` did with the -latest link

    @property
    def resumed(self) -> bool:
        return self.resumed_status is not None

    # ------------------------------------------------------------------ creation and resume
    @classmethod
    def create(
        cls,
        root: Path | str,
        stage: str,
        recipe_name: str,
        config: Mapping[str, Any],
        *,
        tag: str | None = None,
        argv: list[str] | None = None,
    ) -> RunDir:
        """Create a new run directory (a `-2`, `-3` … suffix when the name is taken in the same
        second: a run is never overwritten). `-latest` moves later, in `finish`."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{recipe_name}-{stamp}" + (f"-{tag}" if tag else "")
        parent = Path(root) / stage
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = parent / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RunDirError(
                f"{parent / name}: 999 runs of this name in one second; wait a second"
            )
        run = cls(path, stage)
        run._write_config(config)
        run._write_command(argv or sys.argv)
        run._write_meta(status="running", recipe=recipe_name, tag=tag)
        return run

    @classmethod
    def resume(cls, path: Path | str, stage: str) -> RunDir:
        """Open an existing run of `stage` to continue it with its stored config."""
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.is_file() or not (path / "config.yaml").is_file():
            raise RunDirError(
                f"{path} is not a pixelctl run directory (no meta.json / config.yaml); "
                "pass a folder created by an earlier run"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("stage") != stage:
            raise RunDirError(
                f"{path} is a {meta.get('stage')!r} run; resume it with "
                f"`pixelctl {meta.get('stage')} --resume {path}`"
            )
        status = effective_status(meta)
        if status == "running" and process_alive(meta) and meta.get("pid") != os.getpid():
            raise RunDirError(
                f"{path} is still running (pid {meta.get('pid')} on {meta.get('host')}); "
                "wait for it to end or stop it first"
            )
        run = cls(path, stage)
        run.resumed_status = status
        resumes = [*meta.get("resumes", []), {"at": _now(), "argv": sys.argv, "was": status}]
        run.update_meta(
            status="running", resumes=resumes, end=None, exit_status=None, **process_identity()
        )
        return run

    def stored_config(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "config.yaml").read_text()) or {}

    # ------------------------------------------------------------------ files
    def _write_config(self, config: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
        (self.path / "config.yaml").write_text(text)

    def _write_command(self, argv: list[str]) -> None:
        cmd = " ".join(shlex.quote(a) for a in ["pixelctl", *argv[1:]])
        text = f"#!/usr/bin/env bash\n# Re-run this stage exactly as it was launched.\ncd {shlex.quote(os.getcwd())}\n{cmd}\n"
        f = self.path / "command.sh"
        f.write_text(text)
        f.chmod(0o755)

    def _write_meta(self, **fields: Any) -> None:
        sha, dirty = git_state()
        meta = {
            "stage": self.stage,
            "pixelctl": __version__,
            "git_sha": sha,
            "git_dirty": dirty,
            "python": sys.version.split()[0],
            "packages": package_versions(),
            **process_identity(),
            "platform": platform.platform(),
            "devices": devices(),
            "start": _now(),
            "end": None,
            "exit_status": None,
            **fields,
        }
        self._dump_meta(meta)

    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "meta.json").read_text())

    def update_meta(self, **fields: Any) -> None:
        self._dump_meta({**self.meta(), **fields})

    def _dump_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        tmp.replace(self.path / "meta.json")  # atomic: an interrupted write leaves the old file

    def finish(self, exit_status: int, error: str | None = None) -> str | None:
        """Record the exit status; a run that ended well and holds its outputs moves `-latest`.
        Returns one line saying what happened to the link (None when the run failed)."""
        status = "ok" if exit_status == 0 else ("interrupted" if exit_status == 130 else "failed")
        self.update_meta(status=status, end=_now(), exit_status=exit_status, error=error)
        if status != "ok":
            return None
        return self.promote()

    def promote(self) -> str:
        """Point `<recipe>[-<tag>]-latest` here if the run holds what the next stage reads."""
        meta = self.meta()
        recipe = meta.get("recipe") or self.path.name.split("-20", 1)[0]
        link = self.path.parent / latest_name(recipe, meta.get("tag"))
        missing = missing_outputs(self.path, self.stage)
        if missing:
            return f"{link.name} not moved: this run holds no {', '.join(missing)}"
        _point_latest(link, self.path)
        return f"{link} → {self.path.name}"

    # ------------------------------------------------------------------ metrics
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line (flushed and fsynced: a killed run keeps every logged step)."""
        line = json.dumps({"time": round(time.time(), 3), **record}, default=float)
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        step = record.get("step", record.get("done"))
        if isinstance(step, int) and "event" not in record:
            kill_point(step)

    def read_metrics(self) -> list[dict[str, Any]]:
        return list(iter_jsonl(self.metrics_path))

    def rewind_metrics(self, keep: Callable[[dict[str, Any]], bool], **marker: Any) -> int:
        """Drop every metrics line from the first one `keep` refuses on (lines logged after the
        checkpoint a resume continues from), then append one resume marker. Returns the number
        of lines dropped. Atomic: a kill during the rewrite leaves the old file."""
        lines = list(iter_jsonl(self.metrics_path))
        cut = next((i for i, r in enumerate(lines) if "event" not in r and not keep(r)), len(lines))
        kept, dropped = lines[:cut], len(lines) - cut
        tmp = self.metrics_path.with_name(f".{self.metrics_path.name}.tmp")
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in kept))
        tmp.replace(self.metrics_path)
        self.log_metrics({"event": "resume", "dropped_lines": dropped, **marker})
        return dropped

    def last_logged(self, key: str = "step") -> int:
        """The highest `key` in metrics.jsonl (0 when none)."""
        return max((r[key] for r in self.read_metrics() if isinstance(r.get(key), int)), default=0)


def metric_steps(path: Path, key: str = "step") -> list[Any]:
    """The `key` values of a metrics file in order, resume markers skipped (for readers/tests)."""
    return [r[key] for r in iter_jsonl(path) if key in r and "event" not in r]


# ---------------------------------------------------------------------------- test hook
_KILL_ENV = "PIXELCTL_TEST_KILL_AT_STEP"  # "N" or "N:KILL" / "N:INT" (default INT)


def kill_point(step: int) -> None:
    """Tests only: send this process SIGINT/SIGKILL once `step` reaches $PIXELCTL_TEST_KILL_AT_STEP.

    The one place a stage can be stopped at a chosen step, so tests that kill real processes
    never race a sleep. Unset (always, outside tests), it does nothing."""
    spec = os.environ.get(_KILL_ENV)
    if not spec:
        return
    at, _, sig = spec.partition(":")
    if step >= int(at):
        os.environ.pop(_KILL_ENV)  # once: the SIGINT handler's own logging must not re-fire
        os.kill(os.getpid(), signal.SIGKILL if sig.upper() == "KILL" else signal.SIGINT)


def _point_latest(link: Path, target: Path) -> None:
    """`runs/<stage>/<recipe>-latest` → the newest run, so recipes can chain stages by path."""
    tmp = link.with_name(link.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)
    tmp.replace(link)  # atomic swap of the symlink


def jsonl_rows(path: Path, *, torn_tail: bool = False) -> list[tuple[int, Any]]:
    """Every non-blank line of a JSONL file as (line number, parsed JSON): the one JSONL reader.

    A line that is not JSON comes as its `json.JSONDecodeError`, for the caller to raise, reject
    or count with its line number. Lines end at "\\n" only: `str.splitlines` would also cut at
    U+2028 and the other separators that `json.dumps(..., ensure_ascii=False)` leaves raw inside
    strings. `torn_tail` drops an unparsable last line, the interrupted write of a killed
    process. Raises OSError or UnicodeDecodeError for a file that cannot be read as text.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[tuple[int, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append((i + 1, json.loads(line)))
        except json.JSONDecodeError as exc:
            if torn_tail and i == last:
                break
            rows.append((i + 1, exc))
    return rows


def iter_jsonl(path: Path) -> Iterator[Any]:
    """The rows of a JSONL file the run itself appends to: none if it does not exist, a torn last
    line (a kill mid-write) skipped, any other bad line an error naming the file and line."""
    if not path.is_file():
        return
    for number, row in jsonl_rows(path, torn_tail=True):
        if isinstance(row, json.JSONDecodeError):
            raise json.JSONDecodeError(f"{path}, line {number}: {row.msg}", row.doc, row.pos)
        yield row


@contextmanager
def running(run: RunDir) -> Iterator[RunDir]:
    """Record the exit status in meta.json whatever happens, Ctrl-C included (which prints the
    resume command)."""
    try:
        yield run
    except KeyboardInterrupt:
        run.finish(130, "interrupted")
        print(
            f"\ninterrupted: continue with `{resume_command(run.path, run.stage)}`",
            file=sys.stderr,
            flush=True,
        )
        raise
    except BaseException as exc:
        code = (exc.code or 0) if isinstance(exc, SystemExit) else 1
        run.finish(code if isinstance(code, int) else 1, repr(exc))
        raise
    else:
        run.latest_note = run.finish(0)

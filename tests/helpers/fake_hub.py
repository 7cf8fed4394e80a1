"""A Hugging Face Hub on loopback, serving a local folder laid out like the hub's repositories.

`root/models/<owner>/<name>/…` and `root/datasets/<owner>/<name>/…` are served through the
endpoints `huggingface_hub.snapshot_download` calls: `GET /api/<kind>s/<repo>[/revision/<rev>]`
(the commit), `GET /api/<kind>s/<repo>/tree/<rev>?recursive=…` (the file list), and
`HEAD`/`GET /[datasets/]<repo>/resolve/<rev>/<path>` with byte ranges (the files). The real
client runs unchanged against it (pointed here with its `endpoint`), so a test exercises the
same download, resume and local-dir code as a real fetch; only the server is ours.

`break_after[path] = n` makes the next GET of that file send its first n bytes and drop the
connection, then answer 500 until cleared: an interrupted download. `requests` records every
(method, path, Range header) so a test can assert what was (not) fetched.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"


def _files(repo_dir: Path) -> list[Path]:
    return sorted(p for p in repo_dir.rglob("*") if p.is_file())


class FakeHub:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.requests: list[tuple[str, str, str | None]] = []
        self.break_after: dict[str, int] = {}
        self.broken: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                hub._serve(self, head=True)

            def do_GET(self):
                hub._serve(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ routing
    def _repo(self, kind: str, owner: str, name: str) -> Path:
        return self.root / f"{kind}s" / owner / name

    def _serve(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path, h.headers.get("Range")))
        parts = path.strip("/").split("/")
        try:
            if parts[0] == "api":  # api/<kind>s/<owner>/<name>[/(revision|tree)/<rev>]
                kind, owner, name = parts[1][:-1], parts[2], parts[3]
                what = parts[4] if len(parts) > 4 else "revision"
                repo = self._repo(kind, owner, name)
                if not repo.is_dir():
                    return self._json(h, {"error": "Repository not found"}, 404)
                if what == "revision":
                    siblings = [{"rfilename": str(p.relative_to(repo))} for p in _files(repo)]
                    return self._json(
                        h, {"id": f"{owner}/{name}", "sha": SHA, "siblings": siblings}
                    )
                return self._json(h, [self._entry(repo, p) for p in _files(repo)])
            kind = "dataset" if parts[0] == "datasets" else "model"
            if kind == "dataset":
                parts = parts[1:]
            owner, name, _resolve, _rev, *rest = parts
            return self._file(h, self._repo(kind, owner, name), "/".join(rest), head)
        except (IndexError, ValueError):
            return self._json(h, {"error": "not found"}, 404)

    @staticmethod
    def _etag(data: bytes) -> str:
        return hashlib.sha1(data).hexdigest()

    def _entry(self, repo: Path, p: Path) -> dict:
        data = p.read_bytes()
        return {"type": "file", "path": str(p.relative_to(repo)), "size": len(data),
                "oid": self._etag(data)}  # fmt: skip

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, obj, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-Repo-Commit", SHA)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _file(self, h: BaseHTTPRequestHandler, repo: Path, rel: str, head: bool) -> None:
        p = repo / rel
        if not p.is_file():
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = p.read_bytes()
        if not head and rel in self.broken:
            h.send_response(500)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and not head:
            start = int(rng[len("bytes=") :].split("-")[0])
        body = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", f'"{self._etag(data)}"')
        h.send_header("X-Repo-Commit", SHA)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        cut = self.break_after.pop(rel, None)
        if cut is not None:
            self.broken.add(rel)
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)

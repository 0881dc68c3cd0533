"""A loopback stand-in for the Hugging Face Hub, speaking the HTTP API that huggingface_hub 2.x uses.

Endpoints (see shared reference "hub-and-tei.md", section 8):
  GET  /api/models/{repo}/revision/{rev}            model info (`id`, `sha`, `siblings`, ...)
  GET  /api/models/{repo}/tree/{rev}[/{path}]        file listing (`recursive`, pagination by Link header)
  POST /api/models/{repo}/paths-info/{rev}           metadata for given paths
  HEAD /{repo}/resolve/{rev}/{path}                  X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size
  GET  /{repo}/resolve/{rev}/{path}                  the bytes, honouring `Range: bytes=N-`

Errors carry the hub's `X-Error-Code` header so the client raises its real exceptions. Per repo the
hub can be told to answer 401 (private), to be gated (401 GatedRepo on files unless a known token
is sent), to answer 404, to stall mid-file, to cut the connection mid-file, or to pace its bytes.

Run alone: `python -m tests.fakes.fake_hub --port 8765 --repo acme/tiny-llama` (then HF_ENDPOINT=...).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 1024 * 1024

# A real Llama-architecture config.json (shape of meta-llama/Llama-3.2-1B), shrunk in size only.
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0",
    "use_cache": True,
    "vocab_size": 128256,
}


@dataclass
class RepoFile:
    path: str
    data_path: Path  # bytes live on disk so large files cost no memory
    size: int
    git_oid: str
    sha256: str | None  # set for LFS files
    listed_size: int | None = None  # what the listing claims (a "huge" repo without the bytes)

    @property
    def etag(self) -> str:
        return self.sha256 or self.git_oid


@dataclass
class Repo:
    repo_id: str
    sha: str
    files: dict[str, RepoFile] = field(default_factory=dict)
    mode: str = "ok"  # ok | private | gated | missing | stall | cut | stall_api (API calls wait for release_stall)
    gated_tokens: set[str] = field(default_factory=set)
    rate_bps: int | None = None  # pace file bytes (the resume test needs time to kill a worker)
    fail_after: int = 0  # for stall/cut: bytes of each file body sent before misbehaving
    cut_times: int = 1  # how many GETs get cut before the hub behaves again


class FakeHub:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="fake-hub-"))
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers) for assertions
        self.lock = threading.Lock()
        self.release_stall = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- repos --------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes | int], *, lfs_min_size: int = 10 * 1024) -> Repo:
        """Files are bytes, or an int for that many pseudo-random bytes generated on disk."""
        sha = hashlib.sha1(repo_id.encode() + str(time.time_ns()).encode()).hexdigest()
        repo = Repo(repo_id=repo_id, sha=sha)
        folder = self.root / repo_id.replace("/", "--")
        for path, content in files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, int):
                _write_random(target, content, seed=f"{repo_id}/{path}")
            else:
                target.write_bytes(content)
            size = target.stat().st_size
            git_oid = _git_blob_oid(target, size)
            sha256 = _sha256(target) if size >= lfs_min_size else None
            repo.files[path] = RepoFile(path, target, size, git_oid, sha256)
        self.repos[repo_id] = repo
        return repo

    def add_model_repo(self, repo_id: str, *, weight_bytes: int = 3 * CHUNK, shards: int = 2,
                       extra: dict[str, bytes | int] | None = None) -> Repo:
        """A small multi-file model repo: real config.json, tokenizer files, sharded safetensors, junk to skip."""
        per_shard = weight_bytes // shards
        files: dict[str, bytes | int] = {
            "config.json": json.dumps(LLAMA_CONFIG, indent=2).encode(),
            "generation_config.json": b'{"bos_token_id": 128000, "eos_token_id": 128001}',
            "tokenizer_config.json": b'{"model_max_length": 131072}',
            "tokenizer.json": 64 * 1024,
            "README.md": f"# {repo_id}\n\nA generated test model.\n".encode(),
            "original/consolidated.00.pth": 64 * 1024,
        }
        for index in range(shards):
            files[f"model-{index + 1:05d}-of-{shards:05d}.safetensors"] = per_shard
        files.update(extra or {})
        return self.add_repo(repo_id, files)

    # --- server ---------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release_stall.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def range_requests(self, path_suffix: str = "") -> list[str]:
        with self.lock:
            return [h.get("range", "") for m, p, h in self.requests
                    if m == "GET" and p.endswith(path_suffix) and h.get("range")]

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _write_random(target: Path, size: int, *, seed: str) -> None:
    # Deterministic and incompressible, so sizes on the wire are honest.
    rng = random.Random(seed)
    with target.open("wb") as out:
        written = 0
        while written < size:
            piece = rng.randbytes(min(CHUNK, size - written))
            out.write(piece)
            written += len(piece)


def _git_blob_oid(path: Path, size: int) -> str:
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


API_RE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree|paths-info)/(?P<rest>.+)$")
RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, fmt, *args) -> None:  # keep test output quiet
        pass

    # --- plumbing -------------------------------------------------------------------------------
    def _record(self) -> None:
        with self.fake.lock:
            self.fake.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, extra: dict | None = None):
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else ""

    def _repo_or_error(self, repo_id: str, *, files: bool) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None or repo.mode == "missing":
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.mode == "private" and self._token() not in repo.gated_tokens:
            # The hub hides private repos behind a 401 with RepoNotFound.
            self._error(401, "RepoNotFound", "Invalid username or password.")
            return None
        if files and repo.mode == "gated" and self._token() not in repo.gated_tokens:
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it "
                                          "and be authenticated to access it. Please log in.")
            return None
        return repo

    def _revision_ok(self, repo: Repo, rev: str) -> bool:
        if unquote(rev) in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(rev)}")
        return False

    # --- verbs ----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        if (match := API_RE.match(url.path)) is not None:
            return self._api(match, parse_qs(url.query))
        if (match := RESOLVE_RE.match(url.path)) is not None:
            return self._resolve(match, head=False)
        self._error(404, None, "Not found")

    def do_HEAD(self) -> None:
        self._record()
        match = RESOLVE_RE.match(urlsplit(self.path).path)
        if match is None:
            return self._error(404, None, "Not found")
        self._resolve(match, head=True)

    def do_POST(self) -> None:
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        match = API_RE.match(urlsplit(self.path).path)
        if match is None or match["kind"] != "paths-info":
            return self._error(404, None, "Not found")
        repo = self._repo_or_error(match["repo"], files=False)
        if repo is None or not self._revision_ok(repo, match["rest"]):
            return
        body = parse_qs(raw.decode()) if b"=" in raw and not raw.startswith(b"{") else {}
        paths = body.get("paths", []) or (json.loads(raw or b"{}").get("paths", []))
        entries = [_entry(repo.files[p]) for p in paths if p in repo.files]
        self._send(200, json.dumps(entries).encode())

    def _api(self, match, query: dict) -> None:
        repo = self._repo_or_error(match["repo"], files=False)
        if repo is None:
            return
        if repo.mode == "stall_api":
            self.fake.release_stall.wait(600)  # a hub that takes its time to answer
        rest = match["rest"]
        if match["kind"] == "revision":
            if not self._revision_ok(repo, rest):
                return
            return self._send(200, json.dumps(_model_info(repo)).encode())
        rev, _, sub = rest.partition("/")
        if not self._revision_ok(repo, rev):
            return
        prefix = unquote(sub).strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries = []
        dirs = set()
        for path in sorted(repo.files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            relative = path[len(prefix) + 1:] if prefix else path
            if "/" in relative and not recursive:
                dirs.add((prefix + "/" if prefix else "") + relative.split("/")[0])
                continue
            for index, _part in enumerate(relative.split("/")[:-1]):
                dirs.add((prefix + "/" if prefix else "") + "/".join(relative.split("/")[: index + 1]))
            entries.append(_entry(repo.files[path]))
        listing = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                   for d in sorted(dirs)] + entries
        self._send(200, json.dumps(listing).encode())

    def _resolve(self, match, *, head: bool) -> None:
        repo = self._repo_or_error(match["repo"], files=True)
        if repo is None or not self._revision_ok(repo, match["rev"]):
            return
        path = unquote(match["path"])
        item = repo.files.get(path)
        commit = {"X-Repo-Commit": repo.sha}
        if item is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on \"main\"", commit)
        headers = {**commit, "Accept-Ranges": "bytes"}
        if item.sha256:
            headers.update({"X-Linked-Etag": f'"{item.sha256}"', "X-Linked-Size": str(item.size)})
        headers["ETag"] = f'"{item.etag}"'
        if head:
            return self._head(item, headers)
        self._body(repo, item, headers)

    def _head(self, item: RepoFile, headers: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(item.size))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _body(self, repo: Repo, item: RepoFile, headers: dict) -> None:
        start = 0
        if (rng := re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))) is not None:
            start = int(rng.group(1))
        status = 206 if start else 200
        length = item.size - start
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if start:
            headers = {**headers, "Content-Range": f"bytes {start}-{item.size - 1}/{item.size}"}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        misbehave = repo.mode in ("stall", "cut") and item.sha256 is not None
        if repo.mode == "cut":
            with self.fake.lock:
                misbehave = misbehave and repo.cut_times > 0
                if misbehave:
                    repo.cut_times -= 1
        sent = 0
        began = time.monotonic()
        with item.data_path.open("rb") as source:
            source.seek(start)
            while sent < length:
                piece = source.read(min(CHUNK if repo.rate_bps is None else 64 * 1024, length - sent))
                if not piece:
                    break
                if misbehave and sent + len(piece) > repo.fail_after:
                    piece = piece[: max(repo.fail_after - sent, 0)]
                    if piece:
                        self.wfile.write(piece)
                    self.wfile.flush()
                    if repo.mode == "stall":
                        self.fake.release_stall.wait(600)
                    # Cut: drop the connection without finishing the body.
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(piece)
                if repo.rate_bps:
                    ahead = sent / repo.rate_bps - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)


def _entry(item: RepoFile) -> dict:
    size = item.listed_size or item.size
    entry = {"type": "file", "oid": item.git_oid, "size": size, "path": item.path}
    if item.sha256:
        entry["lfs"] = {"oid": item.sha256, "size": size, "pointerSize": 134}
    return entry


def _model_info(repo: Repo) -> dict:
    owner = repo.repo_id.split("/")[0]
    return {
        "_id": repo.sha[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": owner, "sha": repo.sha,
        "lastModified": "2026-10-01T12:00:00.000Z", "private": repo.mode == "private",
        "gated": "manual" if repo.mode == "gated" else False, "disabled": False, "downloads": 0, "likes": 0,
        "library_name": "transformers", "tags": ["transformers", "safetensors", "llama"],
        "pipeline_tag": "text-generation", "createdAt": "2026-09-01T12:00:00.000Z",
        "siblings": [{"rfilename": path} for path in sorted(repo.files)], "spaces": [],
        "usedStorage": sum(f.size for f in repo.files.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--repo", action="append", default=[], help="owner/name of a generated model repo")
    parser.add_argument("--weight-mb", type=int, default=4)
    parser.add_argument("--single-file-mb", type=int, default=0,
                        help="serve each repo as config.json + one model.safetensors of this size")
    args = parser.parse_args()
    hub = FakeHub()
    for repo_id in args.repo or ["acme/tiny-llama"]:
        if args.single_file_mb:
            hub.add_repo(repo_id, {"config.json": json.dumps(LLAMA_CONFIG).encode(),
                                   "model.safetensors": args.single_file_mb * CHUNK})
        else:
            hub.add_model_repo(repo_id, weight_bytes=args.weight_mb * CHUNK)
    hub.start(port=args.port)
    print(f"fake hub on {hub.url} serving {', '.join(hub.repos)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

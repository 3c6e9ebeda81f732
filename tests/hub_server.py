"""A local Hub for tests: the part of the Hub's HTTP API that huggingface_hub and datasets use to push a
dataset repository and to load it back, served on loopback from a temporary folder.

    with HubServer(tmp_path) as hub:        # http://127.0.0.1:<free port>
        ...  # HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET=1, token=hub.token

Dataset repositories only, on the non-Xet upload path the client takes with ``HF_HUB_DISABLE_XET=1``:

- ``POST /api/repos/create``; ``GET /api/datasets/{repo}[/revision/{rev}]`` (repo info);
  ``POST /api/datasets/{repo}/branch/{branch}``; ``POST /api/validate-yaml``;
- ``POST /api/datasets/{repo}/preupload/{rev}``: regular or LFS (binary, or over 10 MB), with the oid of
  the file already at that path;
- ``POST /datasets/{repo}.git/info/lfs/objects/batch``: upload actions only for objects the repository
  does not store yet (LFS objects are kept per repository, by content); ``PUT /lfs-objects/{repo}/{oid}``:
  the bytes (checked), with no token, as to a presigned URL;
- ``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON: header with optional parentCommit, file,
  lfsFile, deletedFile, deletedFolder);
- ``GET /api/datasets/{repo}/tree/{rev}[/{path}]`` (``recursive``; entries always carry their LFS info)
  and ``POST /api/datasets/{repo}/paths-info/{rev}``;
- ``HEAD``/``GET /datasets/{repo}/resolve/{rev}/{path}`` with the headers the client checks
  (X-Repo-Commit, ETag, Content-Length) and byte ranges.

Errors carry the Hub's ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) so the client
raises its usual exceptions. Writes need the token. What was asked is recorded for tests:
``requests`` (method, path) and ``uploads`` (repo, oid, size) of every LFS upload received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub's size above which a file goes to LFS whatever its content
REPO = r"(?P<repo>[^/]+/[^/]+?)"
REV = r"(?P<rev>[^/]+)"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.commit, self.body = status, code, commit, body or {}


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str  # of the content: the LFS oid, and the name of the stored object
    lfs: bool
    git_oid: str  # the git blob id: of the content, or of an LFS file's pointer

    @classmethod
    def regular(cls, data: bytes, sha256: str) -> StoredFile:
        return cls(len(data), sha256, False, _git_blob_id(data))

    @classmethod
    def lfs_object(cls, sha256: str, size: int) -> StoredFile:
        return cls(size, sha256, True, _git_blob_id(_lfs_pointer(sha256, size)))

    def entry(self, path: str) -> dict:
        entry = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size,
                            "pointerSize": len(_lfs_pointer(self.sha256, self.size))}
        return entry


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, StoredFile]] = field(default_factory=dict)  # commit id -> tree
    branches: dict[str, str] = field(default_factory=dict)


class HubServer:
    """The local Hub: `url`, `token`; `requests` and `uploads` record what the clients did."""

    def __init__(self, folder: str | Path, token: str = "hf_local_test_token"):
        self.folder = Path(folder)
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[tuple[str, str, int]] = []
        self._upload_granted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    # --- repository state -------------------------------------------------------------------------

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def _resolve(self, repo_id: str, revision: str) -> tuple[str, dict[str, StoredFile]]:
        repo = self._repo(repo_id)
        revision = unquote(revision)
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit, repo.commits[commit]

    def _object(self, repo_id: str, sha256: str) -> Path:
        return self.folder / repo_id / sha256

    def _store(self, repo_id: str, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        self._object(repo_id, sha256).parent.mkdir(parents=True, exist_ok=True)
        self._object(repo_id, sha256).write_bytes(data)
        return sha256

    def _commit(self, repo: Repo, branch: str, tree: dict[str, StoredFile], message: str) -> str:
        parent = repo.branches.get(branch, "")
        listing = json.dumps(sorted((path, f.git_oid) for path, f in tree.items()))
        commit = hashlib.sha1(f"{parent}\n{message}\n{listing}".encode()).hexdigest()
        repo.commits[commit] = tree
        repo.branches[branch] = commit
        return commit

    def create_repo(self, body: dict) -> dict:
        repo_id = f"{body['organization']}/{body['name']}"
        if body.get("type") != "dataset":
            raise HubError(400, "this local Hub serves dataset repositories only")
        url = {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}
        if repo_id in self.repos:
            raise HubError(409, "You already created this dataset repo", body=url)
        repo = self.repos[repo_id] = Repo(private=body.get("visibility") == "private")
        self._commit(repo, "main", {}, "initial commit")
        return url

    def repo_info(self, repo_id: str, revision: str = "main") -> dict:
        commit, tree = self._resolve(repo_id, revision)
        return {"id": repo_id, "author": repo_id.split("/")[0], "sha": commit, "private": self.repos[repo_id].private,
                "siblings": [{"rfilename": path} for path in sorted(tree)], "tags": []}

    def create_branch(self, repo_id: str, branch: str, body: dict) -> dict:
        repo = self._repo(repo_id)
        if unquote(branch) in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        repo.branches[unquote(branch)], _ = self._resolve(repo_id, body.get("startingPoint") or "main")
        return {}

    def preupload(self, repo_id: str, revision: str, body: dict) -> dict:
        _, tree = self._resolve(repo_id, revision)
        files = []
        for file in body["files"]:
            lfs = file["size"] > LFS_THRESHOLD or b"\0" in base64.b64decode(file["sample"])
            existing = tree.get(file["path"])
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
            files.append({"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        return {"files": files}

    def lfs_batch(self, repo_id: str, body: dict) -> dict:
        self._repo(repo_id)
        objects = []
        for obj in body["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"]}
            if not self._object(repo_id, obj["oid"]).exists():
                self._upload_granted.add((repo_id, obj["oid"]))  # like a presigned URL: the upload needs no token
                answer["actions"] = {"upload": {"href": f"{self.url}/lfs-objects/{repo_id}/{obj['oid']}"}}
            objects.append(answer)
        return {"transfer": "basic", "objects": objects}

    def lfs_upload(self, repo_id: str, oid: str, data: bytes) -> dict:
        if (repo_id, oid) not in self._upload_granted:
            raise HubError(403, f"no upload of {oid} to {repo_id} was granted by an LFS batch request")
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match oid {oid}")
        self._store(repo_id, data)
        self.uploads.append((repo_id, oid, len(data)))
        return {}

    def commit(self, repo_id: str, revision: str, lines: list[dict]) -> dict:
        repo = self._repo(repo_id)
        branch = unquote(revision)
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head, tree = self._resolve(repo_id, branch)
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(tree)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                data = base64.b64decode(value["content"])
                tree[path] = StoredFile.regular(data, self._store(repo_id, data))
            elif key == "lfsFile":
                stored = self._object(repo_id, value["oid"])
                if not stored.exists():
                    raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded")
                tree[path] = StoredFile.lfs_object(value["oid"], stored.stat().st_size)
            elif key == "deletedFile":
                if tree.pop(path, None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                tree = {p: f for p, f in tree.items() if not p.startswith(path.rstrip("/") + "/")}
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        commit = self._commit(repo, branch, tree, header["summary"])
        return {"success": True, "commitOid": commit, "commitUrl": f"{self.url}/datasets/{repo_id}/commit/{commit}",
                "pullRequestUrl": None}

    def tree(self, repo_id: str, revision: str, path: str, recursive: bool) -> list[dict]:
        _, files = self._resolve(repo_id, revision)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"{path} not found", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path, stored in files.items():
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):  # the folders on the way
                folder = prefix + "/".join(parts[:i])
                entries.setdefault(folder, _folder_entry(folder))
            if recursive or len(parts) == 1:
                entries[file_path] = stored.entry(file_path)
        return [entries[p] for p in sorted(entries)]

    def paths_info(self, repo_id: str, revision: str, paths: list[str]) -> list[dict]:
        _, files = self._resolve(repo_id, revision)
        found = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                found.append(files[path].entry(path))
            elif any(p.startswith(path + "/") for p in files):
                found.append(_folder_entry(path))
        return found

    def resolve(self, repo_id: str, revision: str, path: str) -> tuple[str, StoredFile]:
        commit, files = self._resolve(repo_id, revision)
        if path not in files:
            raise HubError(404, f"{path} not found", "EntryNotFound", commit)
        return commit, files[path]


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def _handler_class(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: tests read `hub.requests`
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with hub._lock:
                hub.requests.append((self.command, url.path))
                try:
                    if self.command in ("GET", "HEAD") and (match := re.fullmatch(
                            rf"/datasets/{REPO}/resolve/{REV}/(?P<path>.+)", url.path)):
                        commit, stored = hub.resolve(match["repo"], match["rev"], unquote(match["path"]))
                        data = hub._object(match["repo"], stored.sha256).read_bytes()
                        return self._send_file(commit, stored, data)
                    unauthenticated = url.path == "/api/validate-yaml" or url.path.startswith("/lfs-objects/")
                    if self.command in ("POST", "PUT") and not unauthenticated and (
                            self.headers.get("Authorization") != f"Bearer {hub.token}"):
                        raise HubError(401, "Invalid credentials in Authorization header")
                    return self._send_json(200, self._route(url.path, parse_qs(url.query), body))
                except HubError as error:
                    headers = {"X-Error-Message": str(error)}
                    if error.code:
                        headers["X-Error-Code"] = error.code
                    if error.commit:
                        headers["X-Repo-Commit"] = error.commit
                    return self._send_json(error.status, {"error": str(error), **error.body}, headers)

        def _route(self, path: str, query: dict, body: bytes):
            routes = [
                ("POST", r"/api/repos/create", lambda: hub.create_repo(json.loads(body))),
                ("POST", r"/api/validate-yaml", lambda: {"errors": [], "warnings": []}),
                ("GET", rf"/api/datasets/{REPO}", lambda: hub.repo_info(m["repo"])),
                ("GET", rf"/api/datasets/{REPO}/revision/{REV}", lambda: hub.repo_info(m["repo"], m["rev"])),
                ("POST", rf"/api/datasets/{REPO}/branch/{REV}",
                 lambda: hub.create_branch(m["repo"], m["rev"], json.loads(body or b"{}"))),
                ("POST", rf"/api/datasets/{REPO}/preupload/{REV}",
                 lambda: hub.preupload(m["repo"], m["rev"], json.loads(body))),
                ("POST", rf"/datasets/{REPO}\.git/info/lfs/objects/batch",
                 lambda: hub.lfs_batch(m["repo"], json.loads(body))),
                ("PUT", rf"/lfs-objects/{REPO}/(?P<oid>[0-9a-f]{{64}})", lambda: hub.lfs_upload(m["repo"], m["oid"], body)),
                ("POST", rf"/api/datasets/{REPO}/commit/{REV}",
                 lambda: hub.commit(m["repo"], m["rev"], [json.loads(line) for line in body.splitlines() if line])),
                ("GET", rf"/api/datasets/{REPO}/tree/{REV}(?:/(?P<path>.*))?",
                 lambda: hub.tree(m["repo"], m["rev"], unquote(m["path"] or ""),
                                  query.get("recursive", ["false"])[0].lower() == "true")),
                ("POST", rf"/api/datasets/{REPO}/paths-info/{REV}",
                 lambda: hub.paths_info(m["repo"], m["rev"], parse_qs(body.decode()).get("paths", []))),
            ]
            for method, pattern, answer in routes:
                if method == self.command and (m := re.fullmatch(pattern, path)):
                    return answer()
            raise HubError(404, f"no route for {self.command} {path} in this local Hub")

        def _send_json(self, status: int, payload, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_file(self, commit: str, stored: StoredFile, data: bytes) -> None:
            start, end = 0, len(data)
            if match := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
                start, end = int(match[1]), min(int(match[2]) + 1 if match[2] else len(data), len(data))
            self.send_response(206 if (start, end) != (0, len(data)) else 200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{stored.sha256 if stored.lfs else stored.git_oid}"')
            self.send_header("Accept-Ranges", "bytes")
            if (start, end) != (0, len(data)):
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data[start:end])

    return Handler

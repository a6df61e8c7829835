"""A Databricks workspace on loopback that speaks the few REST endpoints raybricks uses
(jobs, runs, Files API, DBFS), for testing through the real databricks-sdk."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "good-token"


@dataclass
class Workspace:
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content, /Volumes or dbfs
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> ClusterDetails
    node_types: list[dict[str, Any]] = field(default_factory=list)

    def add_run(self, run_id: int, job_id: int, parameters: list[str]) -> None:
        self.runs[run_id] = {
            "run_id": run_id,
            "job_id": job_id,
            "run_page_url": f"https://example.cloud.databricks.com/jobs/{job_id}/runs/{run_id}",
            "tasks": [
                {
                    "task_key": "actor_demos",
                    "python_wheel_task": {
                        "package_name": "raybricks",
                        "entry_point": "raybricks",
                        "parameters": ["run", *parameters],
                    },
                }
            ],
        }

    def children(self, folder: str) -> list[str]:
        prefix = folder.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)})


class _Handler(BaseHTTPRequestHandler):
    workspace: Workspace

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/.well-known/databricks-config":  # public: the SDK probes it first
            return self._json(200, {"oidc_endpoint": ""})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(
                401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
            )
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = unquote(url.path)
        ws = self.workspace
        if path == "/api/2.2/jobs/runs/get":
            run = ws.runs.get(int(query["run_id"]))
            if run is None:
                return self._json(
                    404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run does not exist."}
                )
            return self._json(200, run)
        if path == "/api/2.1/clusters/get":
            cluster = ws.clusters.get(query["cluster_id"])
            if cluster is None:
                return self._json(
                    400, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such cluster."}
                )
            return self._json(200, cluster)
        if path == "/api/2.1/clusters/list-node-types":
            return self._json(200, {"node_types": ws.node_types})
        if path == "/api/2.2/jobs/list":
            jobs = [j for j in ws.jobs if j["settings"]["name"] == query.get("name")]
            return self._json(200, {"jobs": jobs, "has_more": False})
        if path == "/api/2.2/jobs/runs/list":
            runs = sorted(
                (r for r in ws.runs.values() if r["job_id"] == int(query["job_id"])),
                key=lambda r: -r["run_id"],
            )
            return self._json(200, {"runs": runs[: int(query.get("limit", 25))], "has_more": False})
        if path.startswith("/api/2.0/fs/directories"):
            folder = path.removeprefix("/api/2.0/fs/directories")
            names = ws.children(folder)
            if not names:
                return self._json(404, {"error_code": "NOT_FOUND", "message": "No such directory."})
            contents = [
                {
                    "path": f"{folder}/{n}",
                    "name": n,
                    "is_directory": f"{folder}/{n}" not in ws.files,
                }
                for n in names
            ]
            return self._json(200, {"contents": contents})
        if path.startswith("/api/2.0/fs/files"):
            content = ws.files.get(path.removeprefix("/api/2.0/fs/files"))
            if content is None:
                return self._json(404, {"error_code": "NOT_FOUND", "message": "No such file."})
            return self._bytes(content)
        if path == "/api/2.0/dbfs/get-status":
            target = "dbfs:" + query["path"]
            if target in ws.files:
                return self._json(
                    200,
                    {"path": query["path"], "is_dir": False, "file_size": len(ws.files[target])},
                )
            if ws.children(target):
                return self._json(200, {"path": query["path"], "is_dir": True, "file_size": 0})
            return self._json(
                404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such path."}
            )
        if path == "/api/2.0/dbfs/list":
            folder = "dbfs:" + query["path"]
            names = ws.children(folder)
            if not names:
                return self._json(
                    404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such path."}
                )
            files = [
                {"path": f"{query['path']}/{n}", "is_dir": f"{folder}/{n}" not in ws.files}
                for n in names
            ]
            return self._json(200, {"files": files})
        if path == "/api/2.0/dbfs/read":
            content = ws.files.get("dbfs:" + query["path"])
            if content is None:
                return self._json(
                    404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such file."}
                )
            start, length = int(query.get("offset", 0)), int(query.get("length", 2**20))
            part = content[start : start + length]
            return self._json(
                200, {"bytes_read": len(part), "data": base64.b64encode(part).decode()}
            )
        return self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path})

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bytes(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(workspace: Workspace) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (_Handler,), {"workspace": workspace})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # its shutdown waits for the serving loop's next look: 0.5 s by default, per test
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def reached_by_the_sdk(
    workspace: Workspace, monkeypatch: Any, tmp_path: Path
) -> Iterator[Workspace]:
    """`workspace` served on loopback, and the SDK's environment pointing at it (with
    the good token, and no ~/.databrickscfg of the machine's)."""
    server, host = serve(workspace)
    monkeypatch.setenv("DATABRICKS_HOST", host)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    try:
        yield workspace
    finally:
        server.shutdown()

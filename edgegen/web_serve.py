"""``edgegen serve-web BUNDLE``: the web page (web/) and one bundle, read-only, on 127.0.0.1.

    /                 web/index.html and its modules (web/src, web/node_modules/onnxruntime-web)
    /bundle/<path>    manifest.json and the files the manifest names, nothing else

The bundle is checked first (``read_manifest``: schema, limits, containment, sha256), and every
request for it is checked again against the manifest's own list of paths and
``bundle_paths.check_contained`` (no ``..``, no symlink that leaves). Pages on web/ are served
only from inside web/. The server answers GET and HEAD only, binds 127.0.0.1 only, and sends
the cross-origin isolation headers that let onnxruntime-web use threads.

The standard library's http.server is enough for a local static server (the page does all the
work); it is not hardened for the open internet, which is why it never binds anything else.
"""
from __future__ import annotations

import mimetypes
import os
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgegen.bundle_paths import check_contained, manifest_paths
from edgegen.errors import EdgegenError
from edgegen.manifest import MANIFEST, read_manifest

HOST = "127.0.0.1"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ORT_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css",
         ".html": "text/html; charset=utf-8", ".png": "image/png"}


def check_web_dir(web_dir: Path) -> Path:
    web_dir = Path(web_dir)
    if not (web_dir / "index.html").is_file():
        raise EdgegenError(f"the web page is not at {web_dir} (serve-web runs from a source checkout of edgegen; "
                           "give --web-dir)")
    if not (web_dir / ORT_DIST / "ort.min.mjs").is_file():
        raise EdgegenError(f"onnxruntime-web is not installed in {web_dir / 'node_modules'}: run `make web-deps` "
                           "(npm ci in web/)")
    return web_dir


class _Handler(SimpleHTTPRequestHandler):
    server_version = "edgegen-serve-web"
    web_root: str = ""  # realpath of web/
    bundle_root: Path = Path()
    bundle_files: frozenset = frozenset()  # manifest.json and every path the manifest names
    quiet = False

    def log_message(self, fmt, *args):  # noqa: D401 - http.server's hook
        if not self.quiet:
            super().log_message(fmt, *args)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        """URL path -> a file inside web/ or the bundle, or "" (404)."""
        parts = unquote(urlsplit(path).path)
        if parts.startswith("/bundle/"):
            rel = parts[len("/bundle/"):]
            if rel not in self.bundle_files:
                return ""
            try:
                return str(check_contained(self.bundle_root, rel, "request"))
            except EdgegenError:
                return ""
        rel = parts.lstrip("/") or "index.html"
        if rel.endswith("/"):
            rel += "index.html"
        real = os.path.realpath(os.path.join(self.web_root, rel))
        if "\x00" in rel or not real.startswith(self.web_root + os.sep):
            return ""
        return real

    def send_head(self):
        path = self.translate_path(self.path)
        if not path or not os.path.isfile(path):
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        size = os.fstat(f.fileno()).st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", TYPES.get(Path(path).suffix) or mimetypes.guess_type(path)[0]
                         or "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        return f

    def list_directory(self, path):  # never list folders
        self.send_error(HTTPStatus.NOT_FOUND, "not found")
        return None


class WebServer:
    """The page and one bundle on http://127.0.0.1:PORT/ (port 0: a free one). Use as a context
    manager, or ``serve_forever()``; ``close()`` stops it."""

    def __init__(self, bundle, port: int = 0, web_dir=None, quiet: bool = False):
        if isinstance(port, bool) or not 0 <= int(port) < 65536:
            raise EdgegenError(f"port must be in 0..65535, got {port}")
        m = read_manifest(Path(bundle), verify=True)  # one line for a bad bundle, before serving anything
        web = check_web_dir(Path(web_dir) if web_dir else WEB_DIR)
        files = frozenset([MANIFEST] + [rel for _, rel in manifest_paths(m.data)])
        handler = type("Handler", (_Handler,), {"web_root": os.path.realpath(web), "bundle_root": m.root,
                                                  "bundle_files": files, "quiet": quiet})
        try:
            self.httpd = ThreadingHTTPServer((HOST, int(port)), handler)
        except OSError as e:
            raise EdgegenError(f"cannot listen on {HOST}:{port}: {e.strerror}") from None
        self.httpd.daemon_threads = True
        self.manifest = m
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> "WebServer":
        """Serve from a background thread (tests)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

"""Clever's own Python SDK for v2.0 (``clever-python`` 3.0.2), fetched from the package index.

It is the last SDK Clever published for v2 (a swagger-codegen client). pip cannot install it (its
``setup.py`` makes two ``.egg-info`` directories, so pip's metadata step fails, and a plain
``pip download`` fails with it), and Python 3.7+ cannot parse it (a parameter is named
``async``). So the sdist is fetched from the same index pip uses (``PIP_INDEX_URL``, default
PyPI; the simple API's JSON form), checked against the index's sha256, unpacked into a cache
outside the repository (``CLEVER_RELAY_TEST_CACHE``, default ``~/.cache/clever-relay-tests``)
and patched: ``async`` → ``async_req`` and urllib3 2's header accessors. Nothing else changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import urllib.request
from pathlib import Path

NAME = "clever-python"
VERSION = "3.0.2"
SDIST = f"{NAME}-{VERSION}.tar.gz"
TIMEOUT_S = 60.0


class Unreachable(Exception):
    """The package index (or the file it names) cannot be reached from here."""


def cache_dir() -> Path:
    """Where downloads and the patched copy live (never inside the repository)."""
    default = Path.home() / ".cache" / "clever-relay-tests"
    return Path(os.environ.get("CLEVER_RELAY_TEST_CACHE", default)).expanduser()


def _index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    return url.rstrip("/") + f"/{NAME}/"


def _get(url: str, accept: str | None = None) -> bytes:
    headers = {"Accept": accept} if accept else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S
        ) as r:
            body: bytes = r.read()
    except OSError as exc:  # URLError, timeouts, refused connections
        raise Unreachable(f"{url}: {exc}") from exc
    return body


def _download(target: Path) -> None:
    """Fetch the sdist named by the index into ``target``, verifying its sha256."""
    listing = json.loads(_get(_index_url(), "application/vnd.pypi.simple.v1+json"))
    entry = next((f for f in listing["files"] if f["filename"] == SDIST), None)
    if entry is None:
        raise Unreachable(f"{_index_url()} lists no {SDIST}")
    data = _get(entry["url"])
    if hashlib.sha256(data).hexdigest() != entry["hashes"]["sha256"]:
        raise RuntimeError(f"{SDIST}: sha256 differs from the index's")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)


_PATCHES = (
    (re.compile(r"\basync\b"), "async_req"),
    # urllib3 2 dropped HTTPResponse.getheaders()/getheader(); .headers is in both 1.x and 2.x.
    (re.compile(r"self\.urllib3_response\.getheaders\(\)"), "self.urllib3_response.headers"),
    (
        re.compile(r"self\.urllib3_response\.getheader\(name, default\)"),
        "self.urllib3_response.headers.get(name, default)",
    ),
)


def _unpack_patched(sdist: Path, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(sdist.read_bytes())) as tar:
        tar.extractall(dest, filter="data")
    for path in (dest / f"{NAME}-{VERSION}" / "clever").rglob("*.py"):
        text = path.read_text()
        for pattern, replacement in _PATCHES:
            text = pattern.sub(replacement, text)
        path.write_text(text)


def sdk_path() -> Path:
    """The directory to put on ``sys.path`` to ``import clever`` (fetched once, then cached).

    Raises:
        Unreachable: the index cannot be reached and nothing is cached.
    """
    root = cache_dir()
    ready = root / f"{NAME}-{VERSION}-py3"
    if (ready / "clever" / "__init__.py").exists():
        return ready
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / SDIST
    if not sdist.exists():
        _download(sdist)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        _unpack_patched(sdist, Path(tmp))
        try:
            (Path(tmp) / f"{NAME}-{VERSION}").rename(ready)
        except OSError:  # another process finished first
            if not (ready / "clever" / "__init__.py").exists():
                raise
    return ready

"""The files a run logged (tables, images, ...: ``MediaRecord``), for the API and the run page.

Files live in the store's media folder (``ALERTS_DIR/media/<run id>/...``). Only a file inside the
run's own folder is ever read (a path through ``..`` or a symbolic link out of it is refused), and
only of the types below, served with their own content type: an HTML file or an SVG logged with a
run would run its script in the page's origin, so those are listed but never served.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from alerts.store import jsoncodec
from alerts.store.db import Store

# Suffix -> content type of the files that may be served.
SERVED_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".bmp": "image/bmp", ".wav": "audio/wav", ".json": "application/json",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
# A logged table read for the page: past this size it is offered as a download only.
MAX_TABLE_BYTES = 4 * 1024 * 1024
TABLE_ROWS_SHOWN = 100


def media_list(store: Store, run_id: str) -> list[dict]:
    """The run's media records, in the order they were logged."""
    return [{"id": m.id, "step": m.step, "key": m.key, "kind": m.kind, "path": m.path,
             "meta": jsoncodec.loads(m.meta) or {}} for m in store.media_of(run_id)]


def run_file(media_root: Path, run_id: str, relpath: str) -> Optional[tuple[Path, str]]:
    """The file ``relpath`` (as a media record or a table cell names it) and its content type, if it
    is a servable file inside the run's media folder; None otherwise."""
    if not relpath or "\x00" in relpath:
        return None
    root = (media_root / run_id).resolve()
    try:
        path = (media_root / relpath).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if path == root or not path.is_relative_to(root) or not path.is_file():
        return None
    content_type = SERVED_TYPES.get(path.suffix.lower())
    if content_type is None:
        return None
    return path, content_type


def read_table(media_root: Path, run_id: str, relpath: str) -> Optional[dict]:
    """A logged ``Table`` (its columns, its first rows, how many in all), or None when it cannot be
    read here (missing, too large, not a table)."""
    found = run_file(media_root, run_id, relpath)
    if found is None or found[0].stat().st_size > MAX_TABLE_BYTES:
        return None
    try:
        payload = json.loads(found[0].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list):
        return None
    data = payload.get("data") if isinstance(payload.get("data"), list) else []
    return {"columns": [str(c) for c in payload["columns"]], "rows": data[:TABLE_ROWS_SHOWN], "nrows": len(data)}


def is_image_cell(value) -> bool:
    """A table cell that holds an image file (what ``Table.write`` puts in place of an ``Image``)."""
    return (isinstance(value, dict) and value.get("_type") == "image-file" and isinstance(value.get("path"), str)
            and value["path"].lower().endswith(IMAGE_SUFFIXES))

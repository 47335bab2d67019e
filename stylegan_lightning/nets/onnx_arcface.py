"""An insightface ArcFace ONNX model (e.g. ``w600k_r50.onnx`` of the buffalo_l pack) run with onnxruntime on the CPU.

The model file is opened directly (insightface's downloading model zoo is never used). Pre-processing follows
insightface's ``ArcFaceONNX``: RGB input (insightface reads BGR with OpenCV and swaps to RGB), normalised as
``(pixel - 127.5) / 127.5`` -- unless the graph itself starts with ``Sub`` and ``Mul`` nodes (MXNet conversions,
which normalise inside), in which case the raw pixels 0..255 are fed. The input size is read from the model.

**Not differentiable**: the forward runs in onnxruntime on NumPy arrays, under ``torch.no_grad``; the result is a
new tensor on the input's device with no gradient history. Use it for metrics, not for losses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..serialization import CheckpointError
from ..weights import resolve_weight


def _detect_normalisation(path: Path) -> tuple[float, float]:
    """insightface's rule: a ``Sub`` and a ``Mul`` among the first 8 nodes mean the graph normalises itself."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node[:8]
    names = [(n.name, n.op_type) for n in nodes]
    has_sub = any(name.startswith(("Sub", "_minus")) or op == "Sub" for name, op in names)
    has_mul = any(name.startswith(("Mul", "_mul")) or op == "Mul" for name, op in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


class OnnxArcFace(nn.Module):
    """ArcFace ONNX model: ``forward(blob [B, 3, H, W] float32, already normalised) -> [B, D]`` (CPU, no grad).

    ``input_mean`` / ``input_std`` (pixel units) default to insightface's choice for the file; ``swap_rb=True``
    feeds BGR for models trained on BGR input. :meth:`pixel_affine` gives the equivalent map from [-1, 1] images.
    """

    differentiable = False

    def __init__(self, path: str | Path, input_mean: float | None = None, input_std: float | None = None,
                 swap_rb: bool = False):
        super().__init__()
        self.path = Path(path)
        self.swap_rb = swap_rb
        if input_mean is None or input_std is None:
            detected = self._read(lambda: _detect_normalisation(self.path))
            input_mean = detected[0] if input_mean is None else input_mean
            input_std = detected[1] if input_std is None else input_std
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self._open()

    def _read(self, action):
        try:
            return action()
        except Exception as error:  # onnx / onnxruntime raise their own types for corrupt files
            raise CheckpointError(f"ArcFace ONNX model '{self.path}' could not be read "
                                  f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
                                  ) from error

    def _open(self) -> None:
        import onnxruntime

        self.session = self._read(lambda: onnxruntime.InferenceSession(str(self.path),
                                                                       providers=["CPUExecutionProvider"]))
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise CheckpointError(f"'{self.path}' is not an ArcFace model: expected one [N, 3, H, W] input, got "
                                  f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        n, _, h, w = inputs[0].shape
        self.batch_size = n if isinstance(n, int) and n > 0 else None  # None: any batch size
        self.input_size = (h if isinstance(h, int) else 112, w if isinstance(w, int) else 112)
        dim = outputs[0].shape[-1] if outputs[0].shape else None
        if not isinstance(dim, int):
            dim = self._run(np.zeros((self.batch_size or 1, 3, *self.input_size), np.float32)).shape[-1]
        self.embedding_dim = int(dim)

    def pixel_affine(self) -> tuple[float, float]:
        """``(scale, shift)`` with ``blob = scale * image + shift`` for images in [-1, 1]
        (pixel = (image + 1) * 127.5, blob = (pixel - mean) / std)."""
        return 127.5 / self.input_std, (127.5 - self.input_mean) / self.input_std

    def _run(self, blob: np.ndarray) -> np.ndarray:
        if self.batch_size is None:
            return self.session.run([self.output_name], {self.input_name: blob})[0]
        chunks = []
        for start in range(0, len(blob), self.batch_size):
            part = blob[start:start + self.batch_size]
            pad = self.batch_size - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            out = self.session.run([self.output_name], {self.input_name: part})[0]
            chunks.append(out[:len(out) - pad])
        return np.concatenate(chunks)

    @torch.no_grad()
    def forward(self, blob: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, H, W]`` input (RGB unless ``swap_rb``) -> ``[B, D]`` raw embeddings, float32, on
        ``blob``'s device, without gradient."""
        if self.swap_rb:
            blob = blob.flip(1)
        array = np.ascontiguousarray(blob.detach().to("cpu", torch.float32).numpy())
        out = self._run(array).reshape(len(array), -1)
        return torch.from_numpy(out.astype(np.float32)).to(blob.device)

    def __getstate__(self):  # onnxruntime sessions cannot be pickled or deep-copied: reopen from the file
        state = self.__dict__.copy()
        state.pop("session", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def extra_repr(self) -> str:
        return (f"path='{self.path}', input_size={self.input_size}, mean={self.input_mean}, std={self.input_std}, "
                f"embedding_dim={self.embedding_dim}")


def load_onnx_arcface(path: str | Path | None = None, **kwargs) -> OnnxArcFace:
    """The ArcFace ONNX model ``w600k_r50.onnx`` (registry key ``arcface_onnx``) or another file of the same kind."""
    return OnnxArcFace(resolve_weight("arcface_onnx", path), **kwargs)


__all__ = ["OnnxArcFace", "load_onnx_arcface"]

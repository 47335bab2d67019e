"""Safe reading of weight files: nothing in a checkpoint is ever executed.

- :func:`safe_torch_load` reads PyTorch files with ``torch.load(weights_only=True)`` (tensors, containers and
  plain values only; ``argparse.Namespace`` is also accepted because rosinality's training checkpoints carry
  one).
- :func:`restricted_pickle_load` reads a plain pickle through an allow-list: every global the pickle names must be
  on the list, or loading stops with :class:`UnsafeCheckpointError` before anything is called.
- :func:`require_file` turns a missing weight file into an error that says which file and what it is for.
- :func:`load_state_strict` loads a state dict requiring exactly the module's keys and shapes, with one error
  naming every mismatch; :func:`check_before_building` runs the same comparison on a copy of the module built on
  the meta device, so a file whose stored configuration asks for a huge network is refused before any memory is
  allocated (the tensors a file really holds are bounded by its size); :func:`config_size` reads one size from a
  stored configuration (a positive integer, else an error naming the file and the key);
- :func:`check_finite` refuses a state dict holding NaN or infinite values, naming the first bad tensor.
- :func:`cpu_state` is the writing side: a module's state as CPU copies in which shared weights stay shared, so a
  file holds each of them once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import CheckpointError, UnsafeCheckpointError
from .utils.bounds import check_size


def require_file(path: str | Path, purpose: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file, otherwise a :class:`CheckpointError` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{purpose}: file '{path}' {where}. Nothing is downloaded at run time: put the "
                              "file there or point the configuration at it.")
    return path


def safe_torch_load(path: str | Path, purpose: str = "checkpoint") -> Any:
    """Load a PyTorch file with ``weights_only=True`` onto the CPU."""
    path = require_file(path, purpose)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(f"{purpose}: '{path}' is not plain data (tensors, containers, numbers), so it "
                                    f"was not loaded ({_unpickler_reason(str(error))})") from error
    except RecursionError:
        raise CheckpointError(f"{purpose}: '{path}' is nested too deeply to be a weight file") from None
    except Exception as error:  # corrupt input surfaces as IndexError, KeyError, UnicodeDecodeError, MemoryError...
        raise CheckpointError(f"{purpose}: '{path}' is not a readable PyTorch file "
                              f"({type(error).__name__}: {error})") from error


def _unpickler_reason(message: str) -> str:
    """The reason in torch's weights-only refusal (its advice to load with ``weights_only=False`` left out: nothing
    here ever does), cut at the first sentence, e.g. ``Unsupported global: GLOBAL os.system``."""
    _, found, rest = message.partition("WeightsUnpickler error:")
    text = " ".join((rest if found else message).split())
    for end in (" was not an allowed global", ". Please", " Check the documentation"):
        text = text.split(end)[0]
    return text.strip() or "unreadable pickle"


def _load_storage_bytes(data: bytes) -> Any:
    """Tensors pickled with plain ``pickle`` carry their storage as an embedded ``torch.save`` blob."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# Globals every tensor-carrying pickle needs; loaders add their format's own inert stand-ins.
TENSOR_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
}


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    import importlib

    import numpy as np

    try:
        core = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 1.25
        core = importlib.import_module("numpy.core.multiarray")
    found: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = core._reconstruct
        found[(module, "scalar")] = core.scalar
    return found


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: Mapping[tuple[str, str], Callable[..., Any]], purpose: str):
        super().__init__(file)
        self.allowed = allowed
        self.purpose = purpose

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self.purpose}: the file asks for '{module}.{name}', which is not plain data; refusing to load it "
                "(files are never allowed to import or run code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"{self.purpose}: unexpected persistent id {pid!r} in a plain pickle")


def restricted_pickle_load(
    path: str | Path, extra_globals: Mapping[tuple[str, str], Callable[..., Any]], purpose: str
) -> Any:
    """Unpickle ``path`` allowing only tensors, numpy arrays/scalars, standard containers and ``extra_globals``
    (which must be inert stand-ins, never the original classes)."""
    path = require_file(path, purpose)
    allowed = {**TENSOR_GLOBALS, **_numpy_globals(), **extra_globals}
    with open(path, "rb") as handle:
        try:
            return _AllowListUnpickler(handle, allowed, purpose).load()
        except CheckpointError:  # refused globals, and stand-ins that recognise a format (e.g. TensorFlow)
            raise
        except RecursionError:
            raise CheckpointError(f"{purpose}: '{path}' is nested too deeply to be a weight file") from None
        except Exception as error:  # corrupt input: IndexError, KeyError, OverflowError, MemoryError, ...
            raise CheckpointError(f"{purpose}: '{path}' is not a readable pickle "
                                  f"({type(error).__name__}: {error})") from error


OPTIONAL_BUFFERS = ("num_batches_tracked",)  # absent from state dicts written before PyTorch 0.4


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def check_state(module: nn.Module, state: Mapping[str, Any], purpose: str) -> None:
    """Raise one :class:`CheckpointError` naming every key of ``state`` that is missing, unexpected, mis-shaped or
    not a tensor for ``module`` (which may live on the meta device: only shapes are compared)."""
    expected = module.state_dict()
    problems = []
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    missing = sorted(k for k in expected if k not in state and not k.endswith(OPTIONAL_BUFFERS))
    unexpected = sorted(str(k) for k in state if k not in expected)
    shapes = sorted(f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})" for k in expected
                    if isinstance(state.get(k), torch.Tensor) and state[k].shape != expected[k].shape)
    for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes),
                         ("not tensors", not_tensors)):
        if names:
            problems.append(f"{len(names)} {label}: {_names(names)}")
    if problems:
        raise CheckpointError(f"{purpose}: the weights do not match the network ({'; '.join(problems)})")


# In-place ops that only write values (tensor methods and ``torch.nn.init`` functions): on a meta tensor there are
# no values, so they have nothing to do.
META_VALUE_WRITERS = frozenset({
    "add_", "bernoulli_", "cauchy_", "clamp_", "clamp_max_", "clamp_min_", "constant_", "copy_", "dirac_", "div_",
    "erfinv_", "exponential_", "eye_", "fill_", "fill_diagonal_", "geometric_", "index_fill_", "kaiming_normal_",
    "kaiming_uniform_", "log_normal_", "masked_fill_", "mul_", "normal_", "ones_", "orthogonal_", "random_",
    "sparse_", "sub_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zero_", "zeros_",
})


# Random factories whose meta-device versions are Python references (their first use imports sympy and
# torch.fx's symbolic shapes, ~0.6 s): under :func:`on_meta_device` they become ``torch.empty`` of the same shape.
META_RANDOM_FACTORIES = frozenset({"rand", "randn"})
_FACTORY_OPTIONS = ("dtype", "layout", "requires_grad")


class _SkipMetaValueWrites(TorchFunctionMode):
    """Calls of :data:`META_VALUE_WRITERS` on a meta tensor return the tensor untouched, and
    :data:`META_RANDOM_FACTORIES` that would create a meta tensor create an empty one. Besides saving the work, this
    keeps initialisers off PyTorch's Python decompositions for the meta device, whose first use imports
    ``torch._dynamo`` or sympy (0.6-2 s of a tool's start-up on a 2-core CPU)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in META_VALUE_WRITERS:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        elif (name in META_RANDOM_FACTORIES and func.__module__ == "torch" and kwargs.get("out") is None
              and torch.device(kwargs.get("device") or "meta").type == "meta"):
            return torch.empty(*args, **{key: kwargs[key] for key in _FACTORY_OPTIONS if key in kwargs})
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_meta_device() -> Iterator[None]:
    """Build modules on the meta device (shapes only, no memory), skipping their value initialisation."""
    with torch.device("meta"), _SkipMetaValueWrites():
        yield


def check_before_building(build: Callable[[], nn.Module], state: Mapping[str, Any], purpose: str) -> None:
    """Run ``build()`` on the meta device (no memory is allocated) and :func:`check_state` the result against
    ``state``: a stored configuration that asks for more (or other) weights than the file holds is refused before
    the real module is built. ``TypeError`` / ``ValueError`` / ``AssertionError`` from ``build``, and the
    ``RuntimeError`` of a shape no tensor can have (e.g. a storage size that overflows), become a
    :class:`CheckpointError`."""
    try:
        with on_meta_device():
            module = build()
    except (TypeError, ValueError, AssertionError, RuntimeError) as error:
        raise CheckpointError(f"{purpose}: invalid configuration ({error})") from None
    check_state(module, state, purpose)


def config_size(config: Mapping[str, Any], key: str, purpose: str, limit: int | None = None) -> int:
    """``config[key]`` as a positive integer (at most ``limit``), else a :class:`CheckpointError` naming
    ``purpose`` (which names the file) and the key."""
    if not isinstance(config, Mapping) or key not in config:
        raise CheckpointError(f"{purpose}: the stored configuration has no {key!r}")
    return check_size(config[key], f"{purpose}: configuration {key!r}", limit, CheckpointError)


def config_mapping(config: Mapping[str, Any], key: str, purpose: str) -> Mapping[str, Any]:
    """``config[key]`` when it is a mapping, else a :class:`CheckpointError` naming ``purpose`` and the key."""
    value = config.get(key) if isinstance(config, Mapping) else None
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{purpose}: the stored configuration has no {key!r} mapping")
    return value


def config_size_list(config: Mapping[str, Any], key: str, purpose: str, limit: int) -> list[int]:
    """``config[key]`` as a list of at most ``limit`` positive integers (each also at most ``limit``), else a
    :class:`CheckpointError` naming ``purpose`` and the key."""
    value = config.get(key) if isinstance(config, Mapping) else None
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= limit:
        raise CheckpointError(f"{purpose}: configuration {key!r} must be a list of 1..{limit} positive integers")
    return [check_size(item, f"{purpose}: configuration {key!r} entry", limit, CheckpointError) for item in value]


def check_finite(state: Mapping[str, Any], purpose: str) -> None:
    """Raise :class:`CheckpointError` naming the first floating-point tensor of ``state`` holding NaN or Inf."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{purpose}: tensor {key!r} holds NaN or infinite values")


def load_state_strict(module: nn.Module, state: Mapping[str, Any], purpose: str) -> nn.Module:
    """Load ``state`` into ``module`` requiring exactly its keys and shapes.

    BatchNorm ``num_batches_tracked`` counters may be absent (old files); they keep the module's value. Any
    missing, unexpected, mis-shaped or non-tensor entry gives one :class:`CheckpointError` naming them all
    (:func:`check_state`).
    """
    check_state(module, state, purpose)
    expected = module.state_dict()
    complete = {k: v for k, v in expected.items() if k not in state}
    complete.update(state)
    module.load_state_dict(complete, strict=True)
    return module


def cpu_state(module: nn.Module, prefix: str = "", dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as detached CPU copies, keys prefixed with ``prefix``, ready for ``torch.save``;
    with ``dtype`` the floating-point entries are stored in that type (``load_state_dict`` casts them back).
    Entries that are the same tensor in the module (a weight several submodules hold, such as HyperStyle's shared
    hypernetwork) are one tensor in the copy too, so ``torch.save`` writes it once."""
    copies: dict[tuple, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        identity = (value.device, value.data_ptr(), value.dtype, tuple(value.shape), value.stride())
        if identity not in copies:
            copy = value.detach().cpu().clone()
            copies[identity] = copy.to(dtype) if dtype is not None and copy.is_floating_point() else copy
        state[prefix + key] = copies[identity]
    return state


def build_unfilled(cls: type[nn.Module], expected_state: Mapping[str, Any] | None = None, purpose: str = "weights",
                   **arguments: Any) -> nn.Module:
    """``cls(**arguments)`` for strict loading, without spending time on random initialisation: built on the meta
    device, then given (uninitialised) CPU storage that :func:`load_state_strict` overwrites. Batch-norm counters
    start at zero (files may lack them). With ``expected_state`` (the tensors that will be loaded), the meta module
    is first compared with it (:func:`check_state`, naming ``purpose``), so a stored configuration can never ask
    for more memory than the file holds."""
    with on_meta_device():
        module = cls(**arguments)
    if expected_state is not None:
        check_state(module, expected_state, purpose)
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith("num_batches_tracked"):
                buffer.zero_()
    return module

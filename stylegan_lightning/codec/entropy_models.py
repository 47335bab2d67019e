"""CompressAI's entropy models (:class:`EntropyBottleneck`, :class:`GaussianConditional`) without CompressAI's start-up.

``import compressai`` runs a package ``__init__`` that imports the whole library -- models, zoo, torchvision
transforms and point-cloud datasets (``torch_geometric``, hence ``torch._dynamo``) -- about 5 s on a 2-core CPU
before the first symbol is coded. The codec needs only ``compressai.entropy_models`` and what it imports
(``compressai.ops``, the ``_CXX`` CDF builder, the ``ans`` coder).

So when CompressAI has not been imported yet, :func:`import_entropy_models` registers the ``compressai`` package
module from its real spec with its ``__init__`` *deferred*: the package holds only the entropy-coder registry the
entropy models ask for (``available_entropy_coders``, ``get_entropy_coder``, ``set_entropy_coder``); a submodule
(``compressai.ans``, ``compressai.zoo``, ...) is imported when first asked for, and the first access to any other
attribute (``compressai.__version__``, ...) runs the real ``__init__`` in place. User code that imports CompressAI afterwards therefore sees the whole library, with the very classes the
codec uses. When CompressAI is already imported, it is used as it is. ``scipy.stats``, which the entropy models
import but need only to build CDF tables, is deferred to its first use (:func:`_defer_scipy_stats`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

PACKAGE = "compressai"
DEFAULT_CODER = "ans"  # CompressAI's default rANS coder, the one every stream of this toolkit is written with


def _deferred_package() -> ModuleType:
    """The ``compressai`` package module, registered in ``sys.modules`` with its ``__init__`` not yet run."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"the codec's entropy coding needs the {PACKAGE!r} package: pip install {PACKAGE}",
                                  name=PACKAGE)
    package = importlib.util.module_from_spec(spec)
    coders = [DEFAULT_CODER] + (["rangecoder"] if importlib.util.find_spec("range_coder") else [])
    package._entropy_coder = DEFAULT_CODER

    def available_entropy_coders() -> list[str]:
        return list(coders)

    def get_entropy_coder() -> str:
        return package._entropy_coder

    def set_entropy_coder(entropy_coder: str) -> None:
        if entropy_coder not in coders:
            raise ValueError(f"unknown entropy coder {entropy_coder!r}; choose from {', '.join(coders)}")
        package._entropy_coder = entropy_coder

    def finish_initialisation(name: str):
        """PEP 562 hook: a submodule (``ans``, ``zoo``, ...) is imported on its own; any other name runs the real
        ``__init__`` once, keeping the chosen coder, then is answered from it."""
        if name.startswith("__") and name != "__version__":
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        del package.__getattr__
        chosen = package._entropy_coder
        spec.loader.exec_module(package)
        package._entropy_coder = chosen
        return getattr(package, name)

    package.available_entropy_coders = available_entropy_coders
    package.get_entropy_coder = get_entropy_coder
    package.set_entropy_coder = set_entropy_coder
    package.__getattr__ = finish_initialisation
    sys.modules[PACKAGE] = package
    return package


class _DeferredModule(ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet: the import system reads only its dunder attributes
    (``__spec__``, ``__name__``, ``__file__``...); the first other attribute asked for imports the real module (which takes its place in
    ``sys.modules`` and on the parent package) and is answered from it."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # the import system and inspect probe dunders of every module: not a use
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _defer_scipy_stats() -> None:
    """Defer ``scipy.stats`` to its first use. The entropy models import it at the top but use it only to build CDF
    tables (``scipy.stats.norm.ppf``), which a loaded codec already has; importing it costs ~1 s of a
    ``decompress`` on a 2-core CPU."""
    if "scipy.stats" in sys.modules or importlib.util.find_spec("scipy") is None:
        return
    scipy = importlib.import_module("scipy")
    spec = importlib.util.find_spec("scipy.stats")
    if spec is None:
        return
    stand_in = _DeferredModule("scipy.stats")
    stand_in.__spec__, stand_in.__file__ = spec, spec.origin
    stand_in.__path__ = list(spec.submodule_search_locations or [])
    sys.modules["scipy.stats"] = stand_in
    scipy.stats = stand_in


def import_entropy_models() -> ModuleType:
    """``compressai.entropy_models``, imported without running CompressAI's package ``__init__`` when it has not
    run yet, and with ``scipy.stats`` deferred to its first use (see the module docstring)."""
    if PACKAGE not in sys.modules:
        _deferred_package()
    _defer_scipy_stats()
    try:
        return importlib.import_module(f"{PACKAGE}.entropy_models")
    except BaseException:
        if getattr(sys.modules.get(PACKAGE), "__getattr__", None) is not None:
            del sys.modules[PACKAGE]  # leave no half-registered package behind
        raise


_entropy_models = import_entropy_models()
EntropyBottleneck = _entropy_models.EntropyBottleneck
EntropyModel = _entropy_models.EntropyModel  # the base class: its ``decompress`` gives the bare symbols
GaussianConditional = _entropy_models.GaussianConditional

__all__ = ["EntropyBottleneck", "EntropyModel", "GaussianConditional", "import_entropy_models"]

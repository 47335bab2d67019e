"""The models behind the web demo: which files it offers (:class:`DemoSettings`, checked before anything is loaded)
and the loaded models shared by every visitor (:class:`DemoModels`, each loaded once, on first use).

Defaults are the shipped demo models of the repository (``data/demo/``, ``data/priors/``). GradStyle and
HyperStyle are not shipped: their methods are offered only when their files exist or a config names them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
"""The repository (the demo models' paths are relative to it)."""

DEMO_FILES = {
    "codec": "data/demo/codec.pt",
    "e4e": "data/demo/e4e-64.pt",
    "gradstyle": "data/demo/gradstyle-64.ckpt",
    "hyperstyle": "outputs/demo/hyperstyle-64.pt",
    "w_encoder": "data/demo/w-encoder-64.pt",
    "styleae": "data/demo/styleae-64.pt",
    "directions": "data/demo/directions",
    "ganspace": "data/demo/directions/ganspace.pt",
}
"""The shipped demo model of each option (relative to :data:`ROOT`); Makefile's ``DEMO_*`` names the same files."""

METHOD_LABELS = {"e4e": "e4e", "gradstyle": "GradStyle", "hyperstyle": "HyperStyle"}
METHOD_KINDS = {"e4e": "encoder", "gradstyle": "gradstyle", "hyperstyle": "hyperstyle"}
FAMILIES = ("interfacegan", "ganspace", "styleae")
FAMILY_LABELS = {"interfacegan": "InterFaceGAN direction", "ganspace": "GANSpace component",
                 "styleae": "StyleAE attribute"}
SPREAD_SAMPLES = 2000  # prior codes whose spread along a direction is one slider unit


def demo_file(option: str) -> Path:
    """The shipped demo file (or folder) of ``option``."""
    return ROOT / DEMO_FILES[option]


@dataclass(frozen=True)
class Method:
    """One inversion method of the page: its label, the ``--method`` kind of
    :func:`~stylegan_lightning.inversion.load_inversion_model`, the checkpoint and the loader's options."""

    label: str
    kind: str
    checkpoint: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoSettings:
    """The checked files and choices of a ``serve`` run."""

    codec: str
    methods: tuple[Method, ...]
    generator: str | None = None
    styleae: str | None = None
    directions: tuple[str, ...] = ()
    ganspace: str | None = None
    ganspace_components: int = 5
    identity: str | None = None
    id_backend: str = "mobilefacenet"
    framing: str = "utkface-64"
    detector: str = "hog"
    device: str = "auto"


def _given_or_demo(value: str | None, option: str, flag: str, required: bool) -> str | None:
    """A file option: the user's file (it must exist), else the demo file when it exists; ``None`` when neither
    and not ``required``."""
    if value:
        path = Path(value).expanduser()
        if not path.exists():
            raise UsageError(f"{flag} '{value}' does not exist")
        return str(path)
    path = demo_file(option)
    if path.exists():
        return str(path)
    if required:
        raise UsageError(f"{flag}: the demo model '{DEMO_FILES[option]}' is missing; give {flag} FILE")
    return None


def _direction_files(entries: list[str] | None) -> tuple[str, ...]:
    """Direction files from ``--directions`` (files or folders of ``.pt`` / ``.npy``; a folder's GANSpace file
    ``ganspace.pt`` is left out), or the demo folder."""
    if entries is None:
        folder = demo_file("directions")
        entries = [str(folder)] if folder.is_dir() else []
    files: list[str] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            files += [str(p) for p in sorted(path.iterdir())
                      if p.suffix.lower() in (".pt", ".npy") and p.name != "ganspace.pt"]
        elif path.is_file():
            files.append(str(path))
        else:
            raise UsageError(f"--directions '{entry}' does not exist")
    return tuple(files)


def _identity_file(path: str | None, backend: str) -> str | None:
    """``--identity``, or the weights folder's file for ``backend`` when there is one (no identity score
    otherwise)."""
    from ..nets.identity import identity_weight_key
    from ..weights import find_weight

    if path:
        if not Path(path).expanduser().is_file():
            raise UsageError(f"--identity '{path}' does not exist")
        return path
    key = identity_weight_key(backend)
    found = find_weight(key) if key else None
    return str(found) if found else None


def settings_from_args(args) -> DemoSettings:
    """The :class:`DemoSettings` of parsed ``serve`` options; every named file is checked here, before any model
    is loaded (a :class:`UsageError` names the first problem)."""
    methods = [Method(METHOD_LABELS["e4e"], "encoder", _given_or_demo(args.e4e, "e4e", "--e4e", True))]
    gradstyle = _given_or_demo(args.gradstyle, "gradstyle", "--gradstyle", False)
    if gradstyle:
        methods.append(Method(METHOD_LABELS["gradstyle"], "gradstyle", gradstyle))
    hyperstyle = _given_or_demo(args.hyperstyle, "hyperstyle", "--hyperstyle", False)
    if hyperstyle:
        w_encoder = args.w_encoder
        if w_encoder and not Path(w_encoder).expanduser().is_file():
            raise UsageError(f"--w-encoder '{w_encoder}' does not exist")
        if not w_encoder and not args.hyperstyle and demo_file("w_encoder").is_file():
            w_encoder = str(demo_file("w_encoder"))  # the demo HyperStyle's own W-encoder
        methods.append(Method(METHOD_LABELS["hyperstyle"], "hyperstyle", hyperstyle,
                              {"w_encoder": w_encoder} if w_encoder else {}))
    elif args.w_encoder:
        raise UsageError("--w-encoder applies with a HyperStyle model (--hyperstyle)")
    if args.generator and not Path(args.generator).expanduser().is_file():
        raise UsageError(f"--generator '{args.generator}' does not exist")
    return DemoSettings(
        codec=_given_or_demo(args.codec, "codec", "--codec", True), methods=tuple(methods),
        generator=args.generator, styleae=_given_or_demo(args.styleae, "styleae", "--styleae", False),
        directions=_direction_files(args.directions),
        ganspace=_given_or_demo(args.ganspace, "ganspace", "--ganspace", False),
        ganspace_components=args.ganspace_components, identity=_identity_file(args.identity, args.id_backend),
        id_backend=args.id_backend, framing=args.framing, detector=args.detector, device=args.device)


@dataclass(frozen=True)
class Edit:
    """One choice of an edit slider: ``apply(w_plus [B, n, D], strength) -> edited W+`` (strength 0 leaves the
    codes as they are)."""

    label: str
    family: str
    apply: Callable[[Any, float], Any]


class DemoModels:
    """The loaded models of :class:`DemoSettings`, each loaded on first use and then kept (thread-safe: the page
    serves several visitors)."""

    def __init__(self, settings: DemoSettings):
        self.settings = settings
        self.methods = {method.label: method for method in settings.methods}
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    @property
    def device(self):
        from ..utils import select_device

        return self._cached("device", lambda: select_device(self.settings.device))

    def inversion_model(self, label: str):
        """The inversion model of method ``label`` (one of :attr:`methods`)."""
        if label not in self.methods:
            raise UsageError(f"unknown method {label!r}; this page offers {', '.join(self.methods)}")
        method = self.methods[label]

        def build():
            from ..inversion import load_inversion_model

            return load_inversion_model(method.checkpoint, method.kind, self.settings.generator,
                                        **method.options).to(self.device)

        return self._cached(f"method:{label}", build)

    @property
    def generator(self):
        """The generator of the first method (the edits' latent space)."""
        return self.inversion_model(next(iter(self.methods))).decoder

    @property
    def codec(self):
        from ..codec.checkpoints import load_codec

        return self._cached("codec", lambda: load_codec(self.settings.codec, map_location=self.device))

    @property
    def landmarker(self):
        from ..photos.alignment import FaceLandmarker

        return self._cached("landmarker", lambda: FaceLandmarker(self.settings.detector))

    @property
    def identity(self):
        """The identity network, or ``None`` without its weights (the page then shows no identity score)."""
        def build():
            if not self.settings.identity:
                return None
            from ..nets.identity import build_identity_encoder

            return build_identity_encoder(self.settings.id_backend, self.settings.identity).to(self.device).eval()

        return self._cached("identity", build)

    @property
    def edits(self) -> dict[str, dict[str, Edit]]:
        """The choices of each edit slider (:data:`FAMILIES`), label -> :class:`Edit`; a family without files is
        empty."""
        return self._cached("edits", self._build_edits)

    def _build_edits(self) -> dict[str, dict[str, Edit]]:
        import torch

        from ..editing import apply_direction, apply_ganspace, load_direction, load_pca, sample_latents

        generator = self.generator
        style_dim, n_latent = generator.style_dim, generator.n_latent
        edits: dict[str, dict[str, Edit]] = {family: {} for family in FAMILIES}
        codes = sample_latents(generator, SPREAD_SAMPLES, seed=0)
        for path in self.settings.directions:
            direction = load_direction(path).unit()
            if direction.dim != style_dim:
                raise UsageError(f"--directions '{path}' is {direction.dim}-d; the generator's W is {style_dim}-d")
            spread = float((codes @ direction.vector).std())  # one slider unit: the prior's spread along it

            def move(w, strength, direction=direction, spread=spread):
                return apply_direction(w, direction, strength * spread, n_latent=n_latent)

            edits["interfacegan"][direction.name] = Edit(direction.name, "interfacegan", move)
        if self.settings.ganspace:
            pca = load_pca(self.settings.ganspace)
            if pca.dim != style_dim:
                raise UsageError(f"--ganspace '{self.settings.ganspace}' is {pca.dim}-d; the generator's W is "
                                 f"{style_dim}-d")
            for index in range(min(self.settings.ganspace_components, pca.n_components)):
                label = f"component {index}"

                def shift(w, strength, index=index):  # in the component's standard deviations
                    return apply_ganspace(w, pca, index, strength=strength, mode="shift", n_latent=n_latent)

                edits["ganspace"][label] = Edit(label, "ganspace", shift)
        if self.settings.styleae:
            from ..styleae import load_styleae

            model = load_styleae(self.settings.styleae).to(self.device).eval()
            if model.latent_dim != style_dim:
                raise UsageError(f"--styleae '{self.settings.styleae}' works on {model.latent_dim}-d codes; the "
                                 f"generator's W is {style_dim}-d")
            for name in model.attribute_names:
                def attribute(w, strength, name=name):  # the attribute's code coordinate, labels span [-1, 1]
                    with torch.no_grad():
                        return model.edit(w.to(self.device), name, shift=strength, keep_residual=True).cpu()

                edits["styleae"][name] = Edit(name, "styleae", attribute)
        return edits

    def warm_up(self) -> None:
        """Load what every visitor needs (the first method, the codec, the detector, the edits, the identity
        network) so that the first clicks are quick."""
        self.inversion_model(next(iter(self.methods)))
        _ = self.codec, self.landmarker, self.edits, self.identity


__all__ = ["DEMO_FILES", "DemoModels", "DemoSettings", "Edit", "FAMILIES", "FAMILY_LABELS", "Method", "ROOT",
           "demo_file", "settings_from_args"]

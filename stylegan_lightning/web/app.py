"""The web demo's page (Gradio Blocks) over :mod:`.actions`: two tabs, *Invert & edit* and *Compress*.

Import this module only after :func:`~.tools.offline_environment` is in ``os.environ`` (Gradio reads its
settings when it is imported). Every file the page writes goes under the ``workdir`` given to :func:`build_app`.
Each component the browser test drives has an ``elem_id`` (``invert-*``, ``edit-*``, ``compress-*``,
``decode-*``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from ..codec.bitstream import SUFFIX
from ..codec.tools import layer_span, layers_text
from ..errors import CheckpointError, UsageError
from ..photos.tools import PHOTO_SUFFIXES
from . import actions
from .models import FAMILIES, FAMILY_LABELS, DemoModels

VIEW_SIZE = 256
"""Faces are shown at least this large (nearest-neighbour upscaling: the model's own pixels); downloads keep the
model's size."""
SLIDER_LIMITS = {"interfacegan": 5.0, "ganspace": 3.0, "styleae": 2.0}
SLIDER_UNITS = {"interfacegan": "standard deviations of the prior's codes along the direction",
                "ganspace": "standard deviations of the component",
                "styleae": "shift of the attribute's code coordinate (labels span -1..1)"}
CLASSICAL_NAMES = {"webp": "WebP", "jpeg": "JPEG"}
INTRO = ("Try the toolkit on your own photo. Everything runs on this machine: uploads and results stay in a "
         "temporary folder that is deleted when the server stops. The demo models work at 64 x 64 pixels on a "
         "tight face crop.")


def _view(image: Image.Image | None) -> Image.Image | None:
    """``image`` upscaled (nearest) to at least :data:`VIEW_SIZE` for the page."""
    if image is None or image.size[0] >= VIEW_SIZE:
        return image
    factor = -(-VIEW_SIZE // image.size[0])
    return image.resize((image.size[0] * factor, image.size[1] * factor), Image.Resampling.NEAREST)


PAGE_ERRORS = (UsageError, CheckpointError)
"""What the page reports as a one-line message: a bad upload, or a model file that does not load."""


def _error(message: str) -> str:
    return f"**Error:** {message}"


class DemoPage:
    """The page's event handlers, over shared :class:`DemoModels`; files go to fresh folders in ``workdir``."""

    def __init__(self, models: DemoModels, workdir: Path):
        self.models = models
        self.workdir = Path(workdir)

    def _folder(self) -> Path:
        folder = self.workdir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    @staticmethod
    def _choices(values: tuple[Any, ...], families: list[str]) -> dict[str, tuple[str | None, float]]:
        """Slider values ``(label_1, ..., label_k, strength_1, ..., strength_k)`` -> family -> (label, strength)."""
        count = len(families)
        return {family: (values[i], float(values[count + i] or 0.0)) for i, family in enumerate(families)}

    def _metrics(self, inversion: actions.Inversion) -> str:
        identity = (f"{inversion.identity:.3f}" if inversion.identity is not None
                    else "n/a (no identity network weights; see `stylegan-lightning weights`)")
        return (f"**{inversion.method}**: PSNR **{inversion.psnr:.2f} dB**, identity (cosine) **{identity}**, "
                f"inverted in {1000 * inversion.seconds:.0f} ms")

    def _edit_outputs(self, inversion: actions.Inversion, choices, prefix: str) -> tuple[Any, ...]:
        result = actions.render_edit(inversion, choices, self.models)
        folder = self._folder()
        stem = Path(inversion.aligned.name).stem
        image_path = folder / f"{stem}_{prefix}.png"
        result.pasted.save(image_path)
        codes = actions.edited_codes(inversion.w_plus, choices, self.models)
        latents_path = actions.write_latents(inversion, folder / f"{stem}_{prefix}_latents.pt", codes)
        return _view(result.face), result.pasted, str(image_path), str(latents_path), result.seconds

    def invert(self, path: str | None, method: str, *values: Any, families: list[str],
               progress: gr.Progress = gr.Progress()):
        """Invert button: align, invert, apply the sliders, paste back."""
        empty = (None,) * 7 + ("",)  # state, 4 images, 2 files, metrics
        if not path:
            return (*empty, _error("upload a photo first"))
        try:
            progress(0.05, desc=f"Loading {method}")
            size = self.models.inversion_model(method).decoder.size
            progress(0.2, desc="Finding and aligning the face")
            aligned = actions.align_photo(path, self.models, size)
            progress(0.4, desc=f"Inverting with {method}")
            inversion = actions.invert_face(aligned, method, self.models)
            progress(0.8, desc="Applying the edits and pasting the face back")
            face, pasted, image_path, latents_path, _ = self._edit_outputs(inversion, self._choices(values, families),
                                                                           "edited")
        except PAGE_ERRORS as error:
            return (*empty, _error(str(error)))
        return (inversion, _view(_pil_face(aligned)), _view(actions._pil(inversion.reconstruction)), face, pasted,
                image_path, latents_path, self._metrics(inversion), f"Inverted `{aligned.name}`.")

    def edit(self, inversion: actions.Inversion | None, *values: Any, families: list[str]):
        """A slider moved: re-render the edit (no inversion)."""
        if inversion is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Upload a photo and press **Invert** first."
        try:
            face, pasted, image_path, latents_path, seconds = self._edit_outputs(
                inversion, self._choices(values, families), "edited")
        except PAGE_ERRORS as error:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _error(str(error))
        return face, pasted, image_path, latents_path, f"Edited in {1000 * seconds:.0f} ms."

    def _layer_table(self, layers: list[actions.LayerImage], classical: list[actions.ClassicalImage],
                     height: int, width: int) -> str:
        rows = ["| decoded from | bytes | bpp |", "|---|---:|---:|"]
        rows += [f"| {layers_text(layer.layers)} | {layer.num_bytes} | {layer.bpp:.4f} |" for layer in layers]
        rows += [f"| {CLASSICAL_NAMES.get(c.codec, c.codec)} quality {c.quality} | {c.num_bytes} | {c.bpp:.4f} |"
                 for c in classical]
        return "\n".join(rows) + (f"\n\nbpp = 8 x bytes / ({height} x {width} pixels); the bytes of layers 1..k "
                                  "are the stream cut after layer k, header included.")

    def _layer_views(self, layers: list[actions.LayerImage]) -> list[Any]:
        views = [_view(layer.image) for layer in layers][:3]
        return views + [None] * (3 - len(views))

    def compress(self, path: str | None, progress: gr.Progress = gr.Progress()):
        """Compress button: align, code every layer, decode each prefix, classical codecs at the closest size."""
        empty = (None,) * 7 + ("",)
        if not path:
            return (*empty, _error("upload a photo first"))
        try:
            progress(0.1, desc="Finding and aligning the face")
            aligned = actions.align_photo(path, self.models, self.models.codec.generator.size)
            progress(0.4, desc="Coding the face and decoding each layer")
            coded = actions.compress_face(aligned, self.models)
        except PAGE_ERRORS as error:
            return (*empty, _error(str(error)))
        stream_path = self._folder() / f"{Path(aligned.name).stem}{SUFFIX}"
        stream_path.write_bytes(coded.data)
        classical = {c.codec: _view(c.image) for c in coded.classical}
        return (_view(_pil_face(aligned)), *self._layer_views(coded.layers), classical.get("webp"),
                classical.get("jpeg"), str(stream_path), self._layer_table(coded.layers, coded.classical,
                                                                           coded.height, coded.width),
                f"Coded `{aligned.name}` in {1000 * coded.seconds:.0f} ms (encoding and decoding "
                f"{len(coded.layers)} layers).")

    def decode(self, path: str | None):
        """A ``.sglc`` upload: decode each layer prefix."""
        empty = (None,) * 6 + ("",)
        if not path:
            return (*empty, "")
        name = Path(path).name
        try:
            if Path(path).stat().st_size > 1 << 20:
                raise UsageError(f"'{name}' is {Path(path).stat().st_size} bytes, larger than any face stream")
            layers = actions.decode_stream(Path(path).read_bytes(), self.models, name)
        except PAGE_ERRORS as error:
            return (*empty, _error(str(error)))
        last = layers[-1]
        return (None, *self._layer_views(layers), None, None,
                self._layer_table(layers, [], *_stream_size(path)),
                f"Decoded `{name}`: {layers_text(last.layers)}, {last.num_bytes} bytes.")


def _pil_face(aligned: actions.AlignedPhoto) -> Image.Image:
    return actions._pil(aligned.image[0])


def _stream_size(path: str) -> tuple[int, int]:
    from ..codec.bitstream import CodecStream

    stream = CodecStream.from_bytes(Path(path).read_bytes())
    return stream.height, stream.width


def _image(label: str, elem_id: str, **kwargs: Any) -> gr.Image:
    return gr.Image(label=label, type="pil", format="png", interactive=False, elem_id=elem_id,
                    buttons=["download"], **kwargs)


def build_app(models: DemoModels, workdir: Path) -> gr.Blocks:
    """The page over ``models`` (its files under ``workdir``)."""
    page = DemoPage(models, workdir)
    edits = models.edits
    families = [family for family in FAMILIES if edits[family]]
    with gr.Blocks(title="stylegan-lightning demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## stylegan-lightning\n{INTRO}")
        inversion = gr.State(None)
        with gr.Tab("Invert & edit", id="invert"):
            with gr.Row():
                photo = gr.File(label="Photo (JPEG, PNG, WebP, HEIC ...)", file_types=list(PHOTO_SUFFIXES),
                                elem_id="invert-photo")
                with gr.Column():
                    method = gr.Dropdown(choices=list(models.methods), value=next(iter(models.methods)),
                                         label="Inversion method", elem_id="invert-method")
                    run = gr.Button("Invert", variant="primary", elem_id="invert-run")
            status = gr.Markdown(elem_id="invert-status")
            with gr.Row():
                aligned = _image("Aligned face", "invert-aligned")
                reconstruction = _image("Reconstruction", "invert-reconstruction")
                edited = _image("Edited", "invert-edited")
            metrics = gr.Markdown(elem_id="invert-metrics")
            labels, strengths = [], []
            for family in families:
                with gr.Row():
                    labels.append(gr.Dropdown(choices=list(edits[family]), value=next(iter(edits[family])),
                                              label=FAMILY_LABELS[family], scale=1, elem_id=f"edit-{family}-choice"))
                    limit = SLIDER_LIMITS[family]
                    strengths.append(gr.Slider(-limit, limit, value=0.0, step=0.1, label="strength",
                                               info=SLIDER_UNITS[family], scale=3, elem_id=f"edit-{family}"))
            pasted = _image("Result pasted back into the photo", "invert-pasted")
            with gr.Row():
                image_file = gr.File(label="Download the image", interactive=False, elem_id="invert-download-image")
                latents_file = gr.File(label="Download the latents (torch file: keys, w_plus, alignment)",
                                       interactive=False, elem_id="invert-download-latents")
        with gr.Tab("Compress", id="compress"):
            with gr.Row():
                photo_c = gr.File(label="Photo to compress", file_types=list(PHOTO_SUFFIXES), elem_id="compress-photo")
                with gr.Column():
                    run_c = gr.Button("Compress", variant="primary", elem_id="compress-run")
                    stream_in = gr.File(label=f"Or decode a {SUFFIX} file", file_types=[SUFFIX],
                                        elem_id="decode-stream")
            status_c = gr.Markdown(elem_id="compress-status")
            with gr.Row():
                original = _image("Aligned face", "compress-original")
                decoded = [_image(layers_text(k), f"compress-layer{layer_span(k)}")
                           for k in (1, 2, 3)]
                webp = _image("WebP (closest size)", "compress-webp")
                jpeg = _image("JPEG (closest size)", "compress-jpeg")
            table = gr.Markdown(elem_id="compress-table")
            stream_out = gr.File(label=f"Download the {SUFFIX} stream", interactive=False, elem_id="compress-download")

        def invert_handler(path, method_label, *values, progress=gr.Progress()):
            return page.invert(path, method_label, *values, families=families, progress=progress)

        def edit_handler(state, *values):
            return page.edit(state, *values, families=families)

        run.click(invert_handler, [photo, method, *labels, *strengths],
                  [inversion, aligned, reconstruction, edited, pasted, image_file, latents_file, metrics, status])
        for control in (*labels, *strengths):
            control.change(edit_handler, [inversion, *labels, *strengths],
                           [edited, pasted, image_file, latents_file, status], trigger_mode="always_last",
                           show_progress="minimal")
        run_c.click(page.compress, [photo_c], [original, *decoded, webp, jpeg, stream_out, table, status_c])
        stream_in.upload(page.decode, [stream_in], [original, *decoded, webp, jpeg, table, status_c])
    return app


THEME_FONTS = {"font": ["system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}
"""Fonts of the page: the system's own (the default theme would fetch web fonts)."""


def launch(app: gr.Blocks, host: str, port: int, max_upload_mb: int, workdir: Path, block: bool = True):
    """Serve ``app`` on ``host:port`` only (no share link, no server-side rendering), uploads over
    ``max_upload_mb`` refused; ``block=False`` returns at once (tests)."""
    app.queue(default_concurrency_limit=2)
    return app.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                      max_file_size=f"{max_upload_mb}mb", ssr_mode=False, allowed_paths=[str(workdir)],
                      prevent_thread_lock=not block, quiet=True, footer_links=[], mcp_server=False,
                      theme=gr.themes.Default(**THEME_FONTS), pwa=False)


__all__ = ["DemoPage", "VIEW_SIZE", "build_app", "launch"]

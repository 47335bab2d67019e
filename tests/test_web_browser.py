"""The web demo in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium
loads the page served on 127.0.0.1, uploads a sample face, moves an edit slider, compresses the face, downloads
the stream and uploads a broken one. The browser may reach 127.0.0.1 only (every other host name fails to
resolve), and the test checks that the page asked for nothing else.

Skipped when Chromium, its driver, Selenium or Gradio is missing (``.ci/run`` installs the browser). With
``STYLEGAN_LIGHTNING_SCREENSHOTS=FOLDER`` it also saves a screenshot of each tab there (``docs/web-*.png``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/samples/ffhq/00000.jpg"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT = 30  # seconds for any one step (each takes well under one on 2 cores)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"),
]


@pytest.fixture(scope="module")
def server():
    """The demo served in this process on a free port (offline settings, a private temporary folder)."""
    pytest.importorskip("gradio")
    from stylegan_lightning.web.tools import free_port, make_workdir, offline_environment

    workdir = make_workdir()
    saved = dict(os.environ)
    os.environ.update(offline_environment(workdir))
    import argparse

    import torch

    from stylegan_lightning.web.app import build_app, launch
    from stylegan_lightning.web.arguments import serve_arguments
    from stylegan_lightning.web.models import DemoModels, settings_from_args

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    serve_arguments(parser)
    start = time.perf_counter()
    identity = ROOT.parent / "shared/weights/mobilefacenet/068.ckpt"  # the identity score, where it is
    options = ["--identity", str(identity)] if identity.is_file() else []
    models = DemoModels(settings_from_args(parser.parse_args(options)))
    models.warm_up()
    app = build_app(models, workdir)
    port = free_port("127.0.0.1", 0)
    launch(app, "127.0.0.1", port, 2, workdir, block=False)
    print(f"\nserver up in {time.perf_counter() - start:.1f} s")
    yield f"http://127.0.0.1:{port}", workdir
    app.close()
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(saved)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1500", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # the driver given: no download
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _text(driver, elem_id: str) -> str:
    return _css(driver, f"#{elem_id}").text


def _image_src(driver, elem_id: str) -> str | None:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
    return found[0].get_attribute("src") if found else None


def _fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return response.read()


def _pixels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_fetch(url))).convert("RGB"), dtype=np.float64)


def _upload(driver, elem_id: str, path: Path) -> None:
    _css(driver, f"#{elem_id} input[type=file]").send_keys(str(path))


def _download_link(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]")
    return links[0].get_attribute("href") if links else ""


def _requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _screenshot(driver, name: str) -> None:
    """With ``STYLEGAN_LIGHTNING_SCREENSHOTS=FOLDER``: the page as a small PNG there (256-colour palette)."""
    folder = os.environ.get("STYLEGAN_LIGHTNING_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        page.quantize(256, dither=Image.Dither.NONE).save(Path(folder) / name, optimize=True)


def test_invert_edit_and_compress_in_a_browser(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, workdir = server
    timings = {}
    start = time.perf_counter()
    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#invert-run"), "the page did not load")
    timings["page load"] = time.perf_counter() - start

    # Invert & edit: upload, invert, then drag the GANSpace slider; the edited face must change.
    _upload(browser, "invert-photo", SAMPLE)
    _wait(browser, lambda d: SAMPLE.stem in _text(d, "invert-photo"), "the photo was not uploaded")
    start = time.perf_counter()
    _css(browser, "#invert-run").click()
    _wait(browser, lambda d: "PSNR" in _text(d, "invert-metrics"), "no inversion result")
    _wait(browser, lambda d: _image_src(d, "invert-edited") and _image_src(d, "invert-pasted"), "no edited face")
    timings["invert"] = time.perf_counter() - start
    metrics = _text(browser, "invert-metrics")
    psnr = float(re.search(r"PSNR ([\d.]+) dB", metrics).group(1))
    assert 10 < psnr < 40, metrics
    before_src = _image_src(browser, "invert-edited")
    before = _pixels(before_src)
    assert before.shape[0] >= 64
    slider = _css(browser, "#edit-ganspace input[type=range]")
    start = time.perf_counter()
    ActionChains(browser).click_and_hold(slider).move_by_offset(slider.size["width"] // 3, 0).release().perform()
    _wait(browser, lambda d: _image_src(d, "invert-edited") != before_src, "the edited face did not change")
    _wait(browser, lambda d: "Edited in" in _text(d, "invert-status"), "no edit status")
    timings["edit"] = time.perf_counter() - start
    strength = float(_css(browser, "#edit-ganspace input[type=number]").get_attribute("value"))
    assert strength > 0.5
    after = _pixels(_image_src(browser, "invert-edited"))
    assert after.shape == before.shape
    assert np.abs(after - before).mean() > 2.0  # a visible change, in 8-bit levels
    latents = _download_link(browser, "invert-download-latents")
    assert latents and len(_fetch(latents)) > 1000
    _screenshot(browser, "web-invert-edit.png")

    # Compress: upload, compress; the bpp shown must be the downloaded stream's 8 * bytes / pixels.
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Compress')]").click()
    _wait(browser, lambda d: _css(d, "#compress-run").is_displayed(), "no Compress tab")
    _upload(browser, "compress-photo", SAMPLE)
    _wait(browser, lambda d: SAMPLE.stem in _text(d, "compress-photo"), "the photo was not uploaded")
    start = time.perf_counter()
    _css(browser, "#compress-run").click()
    _wait(browser, lambda d: "bpp" in _text(d, "compress-table") and _download_link(d, "compress-download"),
          "no compression result")
    timings["compress"] = time.perf_counter() - start
    for elem_id in ("compress-layer1", "compress-layer1-2", "compress-layer1-3", "compress-webp", "compress-jpeg"):
        assert _image_src(browser, elem_id), elem_id
    data = _fetch(_download_link(browser, "compress-download"))
    from stylegan_lightning.codec.bitstream import CodecStream

    stream = CodecStream.from_bytes(data)
    pixels = stream.height * stream.width
    table = _text(browser, "compress-table")
    for layers, size in enumerate(stream.sizes(), start=1):
        label = "layer 1" if layers == 1 else f"layers 1-{layers}"
        row = re.search(rf"^{label}\s+(\d+)\s+([\d.]+)\s*$", table, re.MULTILINE)
        assert row, (label, table)
        assert int(row.group(1)) == size
        assert row.group(2) == f"{8 * size / pixels:.4f}"
    assert int(re.search(r"^layers 1-3\s+(\d+)", table, re.MULTILINE).group(1)) == len(data)
    webp = re.search(r"^WebP quality \d+\s+(\d+)\s+([\d.]+)", table, re.MULTILINE)
    assert webp and abs(int(webp.group(1)) - len(data)) < len(data)
    _screenshot(browser, "web-compress.png")

    # A file that is not a stream: a one-line error, no decoded image.
    bad = tmp_path / "broken.sglc"
    bad.write_bytes(b"this is not a codec stream" * 4)
    _upload(browser, "decode-stream", bad)
    _wait(browser, lambda d: "Error" in _text(d, "compress-status"), "no error for a broken stream")
    status = _text(browser, "compress-status")
    assert "not a stylegan-lightning codec stream" in status and "\n" not in status.strip()
    assert _image_src(browser, "compress-layer1") is None

    # The stream itself decodes back (after clearing the upload box).
    good = tmp_path / "face.sglc"
    good.write_bytes(data)
    _css(browser, "#decode-stream button[aria-label='Clear']").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#decode-stream input[type=file]"), "no upload box")
    _upload(browser, "decode-stream", good)
    _wait(browser, lambda d: "Decoded" in _text(d, "compress-status"), "the stream did not decode")

    # Uploads over the limit (2 MB here) are refused by the server itself, not only by the page.
    body = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.jpg\"\r\n\r\n" + \
        bytes(3 << 20) + b"\r\n--x--\r\n"
    request = urllib.request.Request(f"{url}/gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=WAIT)
    assert refused.value.code == 413

    foreign = [u for u in _requested_urls(browser) if not re.match(r"(http://127\.0\.0\.1:\d+/|data:|blob:)", u)]
    assert not foreign, foreign
    print(" ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()))
    assert any((Path(workdir) / "uploads").rglob(SAMPLE.name)), "uploads are kept in the server's folder"

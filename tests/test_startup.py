"""What a codec tool imports before its first symbol: CompressAI's entropy models without the rest of CompressAI,
no Lightning, no ``torch._dynamo``, no sympy, ``scipy.stats`` deferred -- and CompressAI still whole for code that imports it afterwards. Each case
runs in a fresh interpreter, because the modules a test process already holds would hide what is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylegan_lightning.serialization import META_VALUE_WRITERS, on_meta_device

DEMO_CODEC = Path(__file__).resolve().parents[1] / "data" / "demo" / "codec.pt"


def run_python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_codec_imports_only_the_entropy_models_of_compressai():
    seen = run_python(
        "import json, sys\n"
        "from stylegan_lightning.codec.entropy_models import EntropyBottleneck\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('compressai'))\n"
        "import compressai\n"
        "coder = compressai.get_entropy_coder()\n"
        "from compressai.zoo import bmshj2018_factorized\n"  # a submodule, imported on its own
        "version = compressai.__version__\n"  # any other name: the real __init__ runs
        "print(json.dumps(dict(loaded=loaded, coder=coder, version=version,\n"
        "    same=compressai.entropy_models.EntropyBottleneck is EntropyBottleneck,\n"
        "    whole='compressai.datasets' in sys.modules and callable(compressai.set_entropy_coder))))\n")
    assert not [m for m in seen["loaded"] if m.split(".")[1:2] in (["datasets"], ["models"], ["zoo"])]
    assert "compressai.entropy_models" in seen["loaded"]
    assert seen["coder"] == "ans" and seen["version"] and seen["same"] and seen["whole"]


def test_an_already_imported_compressai_is_used_as_it_is():
    seen = run_python(
        "import json, compressai\n"
        "from stylegan_lightning.codec.entropy_models import GaussianConditional\n"
        "print(json.dumps(dict(same=compressai.entropy_models.GaussianConditional is GaussianConditional,\n"
        "    version=compressai.__version__)))\n")
    assert seen["same"] and seen["version"]


@pytest.mark.skipif(not DEMO_CODEC.is_file(), reason="the shipped demo codec is not in this checkout")
def test_loading_a_codec_imports_neither_lightning_nor_dynamo():
    seen = run_python(
        "import json, sys\n"
        "from stylegan_lightning.codec.checkpoints import load_codec\n"
        f"load_codec({str(DEMO_CODEC)!r})\n"
        "print(json.dumps({m: m in sys.modules for m in ('lightning', 'torchmetrics', 'torch._dynamo', 'sympy',\n"
        "                                             'scipy.stats._stats_py')}))\n")
    assert seen == {"lightning": False, "torchmetrics": False, "torch._dynamo": False, "sympy": False,
                    "scipy.stats._stats_py": False}


def test_scipy_stats_is_deferred_until_first_used():
    seen = run_python(
        "import json, sys\n"
        "from stylegan_lightning.codec.entropy_models import GaussianConditional\n"
        "before = 'scipy.stats._stats_py' in sys.modules\n"
        "quantile = float(GaussianConditional(None)._standardized_quantile(0.1))\n"  # compressai's own use
        "import scipy.stats\n"
        "from scipy.stats import norm\n"
        "print(json.dumps(dict(before=before, quantile=quantile, ppf=float(norm.ppf(0.1)),\n"
        "    real=sys.modules['scipy.stats'] is scipy.stats and hasattr(scipy.stats, 'ttest_ind'))))\n")
    assert seen["before"] is False and seen["real"]
    assert seen["quantile"] == seen["ppf"] == pytest.approx(-1.2815515655446004, rel=1e-12)


def test_meta_builds_keep_shapes_and_flags_and_skip_only_value_writes():
    with on_meta_device():
        layer = torch.nn.Linear(3, 5)
        layer.weight.requires_grad_(False)
        grown = torch.zeros(2, 3).unsqueeze_(0)
        torch.nn.init.kaiming_uniform_(layer.weight)
    assert layer.weight.is_meta and tuple(layer.weight.shape) == (5, 3) and not layer.weight.requires_grad
    assert tuple(grown.shape) == (1, 2, 3)  # shape-changing in-place ops still run
    assert {"normal_", "uniform_", "kaiming_uniform_"} <= META_VALUE_WRITERS
    assert not {"requires_grad_", "unsqueeze_", "resize_", "transpose_"} & META_VALUE_WRITERS
    real = torch.zeros(2)
    with on_meta_device():
        real.fill_(3.0)  # not a meta tensor: written as usual
        noise = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
        drawn = torch.randn(3, device="cpu")  # another device: drawn as usual
    assert real.tolist() == [3.0, 3.0]
    assert noise.is_meta and tuple(noise.shape) == (2, 4) and noise.dtype == torch.float64 and noise.requires_grad
    assert drawn.device.type == "cpu" and drawn.std() > 0

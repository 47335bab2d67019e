#!/usr/bin/env bash
# Prepare what `tools/gpu_check.sh` needs on a GPU machine that has a CUDA torch, Lightning and torchmetrics but no
# network (the python 3.12 image described in the README's GPU section):
#   .whl/       the wheels that image lacks (pure-Python or cp312 manylinux builds, no dependencies pulled);
#   .gpu-data/  a UTKFace 64 px training subset (GPU_BUNDLE_FACES faces, default 2500, ~7 MB) from ../shared, and
#               with GPU_BUNDLE_FID=1 the MobileFaceNet weights (4 MB) for the validation FID.
# Both folders are git-ignored; together with the tracked files they must stay under the 64 MiB a machine accepts.
set -eu -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
FACES=${GPU_BUNDLE_FACES:-2500}
SHARED=${SHARED:-../shared}
WHEELS="compressai==1.2.8 jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 lpips==0.1.4 pytorch-msssim==1.0.0"

mkdir -p .whl .gpu-data
for spec in $WHEELS; do
    env -u PIP_FIND_LINKS "$PY" -m pip download --isolated -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$spec"
done
"$PY" - "$SHARED/data/utkface-64.zip" ".gpu-data/utkface-64-subset.zip" "$FACES" <<'EOF'
import sys, zipfile
source, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
    names = sorted(name for name in src.namelist() if name.lower().endswith((".jpg", ".png")))[:n]
    for name in names:
        dst.writestr(name, src.read(name))
print(f"{target}: {len(names)} faces")
EOF
rm -f .gpu-data/mobilefacenet-068.ckpt
[ "${GPU_BUNDLE_FID:-0}" = 1 ] && cp "$SHARED/weights/mobilefacenet/068.ckpt" .gpu-data/mobilefacenet-068.ckpt
du -sh .whl .gpu-data

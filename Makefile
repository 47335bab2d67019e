# stylegan-lightning -- `make test` and `make demo` create the environment on first use.
#
# CPU machines: the constraints file pins torch 2.13.0 (CPU build) + torchvision 0.28.0 + numpy<2 so that no
# package pulls a CUDA torch. On a GPU machine install torch your own way first, then e.g.
#   make env VENV=.venv-gpu CONSTRAINTS= SYSTEM_SITE=--system-site-packages

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
SYSTEM_SITE ?=
PIP_C = $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
BIN = $(VENV)/bin
STAMP = $(VENV)/.stylegan-lightning-installed
DEMO_GENERATOR = data/priors/face64.pt
DEMO_CODEC = data/demo/codec.pt
DEMO_E4E = data/demo/e4e-64.pt
DEMO_W_ENCODER = data/demo/w-encoder-64.pt
DEMO_GRADSTYLE = data/demo/gradstyle-64.ckpt
DEMO_HYPERSTYLE = outputs/demo/hyperstyle-64.pt
DEMO_CLASSIFIER = data/demo/classifier.pt
DEMO_JUDGE = data/demo/judge.pt
DEMO_STYLEAE = data/demo/styleae-64.pt
DEMO_PAIRS = outputs/demo/styleae-pairs.pt
DEMO_ALIGN = --align --framing utkface-64
DEMO_ID_WEIGHTS = ../shared/weights/mobilefacenet/068.ckpt
DEMO_IDENTITY = $(if $(wildcard $(DEMO_ID_WEIGHTS)),--id-backend mobilefacenet --identity $(DEMO_ID_WEIGHTS))
DEMO_ID_METRIC = $(if $(wildcard $(DEMO_ID_WEIGHTS)),--id-backend mobilefacenet --weights mobilefacenet=$(DEMO_ID_WEIGHTS))
export HF_HUB_OFFLINE ?= 1

.PHONY: env test serve demo-directions web-screenshots demo demo-sample demo-methods bench bench-codec \
	bench-codec-interop demo-encoder demo-gradstyle demo-hyperstyle demo-styleae compare-styleae demo-train demo-ship \
	train-stylegan train-prior prior-warm prior-gan prior-ship train-prior-cpu clean-env cuda-build-check gpu-check

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(SYSTEM_SITE) $(VENV)
	$(BIN)/python -m pip install -q $(PIP_C) torch torchvision
	$(BIN)/python -m pip install -q $(PIP_C) -e ".[test,web]"
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], \
		"stylegan_lightning_import_hook.pth").write_text("import stylegan_lightning\n")'  # any import order works
	touch $(STAMP)

env: $(STAMP)  ## create / update the virtual environment

test: $(STAMP)  ## run the test suite (CPU; CUDA tests are skipped without a GPU)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

serve: $(STAMP)  ## the web demo on http://127.0.0.1:7860 with the shipped demo models (CONFIG=... for yours; Ctrl-C stops)
	$(BIN)/stylegan-lightning serve $(DEMO_IDENTITY) $(if $(CONFIG),--config $(CONFIG))

demo-directions: $(STAMP)  ## refit the demo's edit directions into data/demo/directions (~2 min)
	$(BIN)/python tools/fit_demo_directions.py

web-screenshots: $(STAMP)  ## docs/web-*.png: the browser test's screenshots of both tabs (needs chromium, chromium-driver)
	STYLEGAN_LIGHTNING_SCREENSHOTS=docs $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_web_browser.py

demo: $(STAMP)  ## codec demo with the shipped models: code the sample faces, decode each layer, grid + bpp/quality table
	$(BIN)/stylegan-lightning evaluate --codec $(DEMO_CODEC) --images data/samples $(DEMO_ALIGN) $(DEMO_ID_METRIC) \
		--classifier $(DEMO_CLASSIFIER) --baselines jpeg,webp,avif,heic --grid outputs/demo/codec-grid.png \
		--csv outputs/demo/codec-table.csv

# HyperStyle is not shipped (its ResNet-34 hypernetwork is 300 MB even in float16) nor GradStyle (42 MB); after
# `make demo-hyperstyle` / `make demo-gradstyle` demo-methods compares them too.
demo-methods: $(STAMP)  ## W-encoder vs e4e vs GradStyle (and HyperStyle once trained) on the sample faces (table + grid)
	$(BIN)/python benchmarks/compare_inversion.py --images data/samples $(DEMO_ALIGN) --out outputs/demo/methods \
		--method w-encoder=encoder:$(DEMO_W_ENCODER) --method e4e=encoder:$(DEMO_E4E) \
		$(if $(wildcard $(DEMO_HYPERSTYLE)),--method hyperstyle=hyperstyle:$(DEMO_HYPERSTYLE)) \
		$(if $(wildcard $(DEMO_GRADSTYLE)),--method gradstyle=gradstyle:$(DEMO_GRADSTYLE)) \
		--w-encoder $(DEMO_W_ENCODER) $(DEMO_IDENTITY)

demo-sample: $(STAMP)  ## generate a sample grid and a truncation sweep from a small generator and print timings
	$(BIN)/stylegan-lightning sample --config configs/demo/sample.yaml

bench: $(STAMP)  ## backbone benchmark tables (ops, generator images/s)
	$(BIN)/python benchmarks/bench_backbone.py

bench-codec: $(STAMP) $(DEMO_CODEC)  ## codec vs JPEG / WebP / AVIF / HEIC on the sample faces, coding times
	$(BIN)/python benchmarks/bench_codec.py --codec $(DEMO_CODEC) --images data/samples

bench-codec-interop: $(STAMP) $(DEMO_CODEC)  ## float32 2-thread encode vs float64 1-thread decode: symbols, margins (~8 min on 2 busy cores)
	$(BIN)/python benchmarks/bench_codec_interop.py --codec $(DEMO_CODEC) --images data/samples --latents 1000

# Training: `make train-encoder` runs configs/encoder.yaml (full size, GPU, user weights); CONFIG=... picks
# another file, e.g. `make train-encoder CONFIG=configs/demo/encoder.yaml`. Same for train-classifier and
# train-gradstyle (configs/gradstyle.yaml: GradStyle over the FFHQ 1024 prior and the official e4e) and
# train-hyperstyle (configs/hyperstyle.yaml: HyperStyle over the FFHQ 1024 prior and the official W-encoder) and
# train-styleae (configs/styleae.yaml: StyleAE over the FFHQ prior, pairs from `stylegan-lightning label-latents`);
# train-stylegan runs configs/stylegan2.yaml (FFHQ) and train-prior configs/prior64-gpu.yaml (10 GPU minutes from the
# shipped 64 px prior; CONFIG=configs/prior64.yaml trains the larger prior from scratch).
CONFIG ?=
train-%: $(STAMP)
	$(BIN)/stylegan-lightning fit --config $(if $(CONFIG),$(CONFIG),configs/$*.yaml)

train-stylegan: $(STAMP)  ## StyleGAN2 on FFHQ (configs/stylegan2.yaml)
	$(BIN)/stylegan-lightning fit --config $(if $(CONFIG),$(CONFIG),configs/stylegan2.yaml)

train-prior: $(STAMP)  ## GPU: 10 minutes of the GAN recipe from the shipped prior (configs/prior64-gpu.yaml)
	$(BIN)/stylegan-lightning fit --config $(if $(CONFIG),$(CONFIG),configs/prior64-gpu.yaml)

# The CPU face prior (data/priors/README.md): stage 1 reconstruction warm start + fitted mapping (~2 h on 2 cores),
# stage 2 adversarial fine-tuning (~40 min), then the shipped float16 file and its grids. Every stage resumes from
# its last.ckpt, so an interrupted run continues where it stopped; PRIOR_MAX_TIME=00:01:00:00 runs a stage in
# chunks (rerun the target until the stage reports max_steps). PRIOR_SHIP picks the stage whose export is shipped.
PRIOR = data/priors/face64.pt
PRIOR_MAX_TIME ?=
PRIOR_SHIP ?= outputs/prior64-cpu/face64-warm.pt
resume_from = $(if $(wildcard $(1)/checkpoints/last.ckpt),--ckpt_path $(1)/checkpoints/last.ckpt)
prior_fit = $(BIN)/stylegan-lightning fit --config $(1) $(if $(PRIOR_MAX_TIME),--trainer.max_time $(PRIOR_MAX_TIME)) \
	$(call resume_from,$(2))

prior-warm: $(STAMP)  ## CPU prior stage 1: reconstruction warm start with a fitted mapping (configs/prior64-cpu.yaml)
	$(call prior_fit,configs/prior64-cpu.yaml,outputs/prior64-cpu)

prior-gan: $(STAMP)  ## CPU prior stage 2: GAN fine-tuning from the warm start (configs/prior64-cpu-gan.yaml)
	$(call prior_fit,configs/prior64-cpu-gan.yaml,outputs/prior64-cpu-gan)

prior-ship: $(STAMP)  ## write data/priors/face64.pt (float16) from PRIOR_SHIP, with its sample grid and truncation sweep
	$(BIN)/stylegan-lightning convert $(PRIOR_SHIP) $(PRIOR) --half --no-discriminator
	$(BIN)/stylegan-lightning sample --generator $(PRIOR) --n 64 --nrow 8 --truncation 0.7 --seed 0 \
		--truncation-sweep 1.0 0.7 0.5 0.0 --sweep-n 8 --out data/priors/face64-samples.png

train-prior-cpu: prior-warm prior-gan prior-ship  ## the CPU face prior, all stages (~150 min on 2 cores, resumable)

# The demo models (data/demo/, float16, committed) were trained on these CPUs by `make demo-train` (real faces from
# ../shared/data, about 1 h 20 min on 2 cores) and written by `make demo-ship`; see data/demo/README.md.
# Each demo-<method> target retrains one model into outputs/demo/ (the shipped ones stay as they are).
demo-encoder: $(STAMP)  ## CPU: train the demo e4e on real faces over the face prior (~18 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/encoder.yaml

# GradStyle is not committed (its slimmed checkpoint is 42 MB): demo-gradstyle trains it and writes $(DEMO_GRADSTYLE).
demo-gradstyle: $(STAMP)  ## CPU: train GradStyle over the shipped demo e4e and the face prior, write data/demo/ (~15 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/gradstyle.yaml
	$(call demo_ship_one,gradstyle:outputs/demo/gradstyle/checkpoints/last.ckpt:gradstyle-64.ckpt)

demo-hyperstyle: $(STAMP)  ## CPU: HyperStyle over the shipped demo W-encoder, 5 iterations, into outputs/demo/ (~18 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/hyperstyle.yaml

$(DEMO_PAIRS): | $(STAMP)
	$(BIN)/stylegan-lightning label-latents --generator $(DEMO_GENERATOR) --classifier $(DEMO_CLASSIFIER) \
		--n 4000 --out $@

demo-styleae: $(STAMP) $(DEMO_PAIRS)  ## CPU: StyleAE on classifier-labelled prior codes, then StyleAE vs InterFaceGAN (~22 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/styleae.yaml
	$(MAKE) compare-styleae DEMO_STYLEAE=outputs/demo/styleae-64.pt

compare-styleae: $(STAMP) $(DEMO_PAIRS)  ## CPU: StyleAE vs InterFaceGAN, reference protocol (judge; ~10 min on 2 busy cores) and step protocol
	$(BIN)/stylegan-lightning compare-edits --styleae $(DEMO_STYLEAE) --generator $(DEMO_GENERATOR) \
		--classifier $(DEMO_CLASSIFIER) --judge $(DEMO_JUDGE) --fit-latents $(DEMO_PAIRS) --latents $(DEMO_PAIRS) --n 64 \
		$(DEMO_IDENTITY) --csv outputs/demo/styleae-table.csv
	$(BIN)/stylegan-lightning compare-edits --protocol steps --styleae $(DEMO_STYLEAE) --generator $(DEMO_GENERATOR) \
		--classifier $(DEMO_CLASSIFIER) --fit-latents $(DEMO_PAIRS) --latents $(DEMO_PAIRS) --n 64 --steps 6 \
		$(DEMO_IDENTITY) --csv outputs/demo/styleae-table-steps.csv

DEMO_TRAINED = codec:outputs/demo/codec.pt:codec.pt encoder:outputs/demo/e4e-64.pt:e4e-64.pt \
	w_encoder:outputs/demo/w-encoder-64.pt:w-encoder-64.pt classifier:outputs/demo/classifier.pt:classifier.pt \
	classifier:outputs/demo/judge.pt:judge.pt \
	gradstyle:outputs/demo/gradstyle/checkpoints/last.ckpt:gradstyle-64.ckpt styleae:outputs/demo/styleae-64.pt:styleae-64.pt
demo_ship_one = $(BIN)/stylegan-lightning ship $(word 2,$(subst :, ,$(1))) data/demo/$(word 3,$(subst :, ,$(1)))

demo-train: $(STAMP)  ## CPU: train every shipped demo model in order, shipping each before the next needs it (~1 h 20 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/codec.yaml
	$(BIN)/stylegan-lightning fit --config configs/demo/encoder.yaml
	$(call demo_ship_one,encoder:outputs/demo/e4e-64.pt:e4e-64.pt)
	$(BIN)/stylegan-lightning fit --config configs/demo/gradstyle.yaml
	$(BIN)/stylegan-lightning fit --config configs/demo/w_encoder.yaml
	$(call demo_ship_one,w_encoder:outputs/demo/w-encoder-64.pt:w-encoder-64.pt)
	$(BIN)/stylegan-lightning fit --config configs/demo/classifier.yaml
	$(call demo_ship_one,classifier:outputs/demo/classifier.pt:classifier.pt)
	$(BIN)/stylegan-lightning fit --config configs/demo/judge.yaml
	$(call demo_ship_one,classifier:outputs/demo/judge.pt:judge.pt)
	rm -f $(DEMO_PAIRS) && $(MAKE) $(DEMO_PAIRS)
	$(BIN)/stylegan-lightning fit --config configs/demo/styleae.yaml

demo-ship: $(STAMP)  ## write the float16 copies of the trained demo models (outputs/demo/) into data/demo/
	$(foreach model,$(DEMO_TRAINED),$(call demo_ship_one,$(model)) &&) true

clean-env:
	rm -rf $(VENV)

# Compile the CUDA kernels for sm_80 and sm_90 on any machine (no GPU needed): a throwaway environment outside the
# project gets the CUDA build of torch and the matching nvcc wheels from the package registry (~4 GB download).
CUDA_CHECK_VENV ?= /tmp/stylegan-lightning-cuda-check
CUDA_CHECK_TORCH ?= 2.13.0
cuda-build-check:  ## compile upfirdn2d and bias_act for sm_80/sm_90 with nvcc from wheels (no GPU), print a table
	test -x $(CUDA_CHECK_VENV)/bin/python || $(PYTHON) -m venv $(CUDA_CHECK_VENV)
	env -u PIP_FIND_LINKS $(CUDA_CHECK_VENV)/bin/python -m pip install --isolated -q torch==$(CUDA_CHECK_TORCH) ninja
	$(CUDA_CHECK_VENV)/bin/python tools/cuda_build_check.py --install-toolkit

# On a machine with one CUDA GPU and no network (prepare .whl/ and .gpu-data/ with tools/gpu_bundle.sh first):
gpu-check:  ## GPU: build the kernels, run the cuda tests, print the GPU benchmark tables, then train the prior (10 min)
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) bash tools/gpu_check.sh

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
DEMO_GENERATOR = outputs/demo/generator-64.pt
DEMO_CODEC = outputs/demo/codec.pt
DEMO_E4E = outputs/demo/e4e-64.pt
DEMO_W_ENCODER = outputs/demo/w-encoder-64.pt
DEMO_CLASSIFIER = outputs/demo/classifier.pt
DEMO_PAIRS = outputs/demo/styleae-pairs.pt
DEMO_ID_WEIGHTS = ../shared/weights/mobilefacenet/068.ckpt
DEMO_IDENTITY = $(if $(wildcard $(DEMO_ID_WEIGHTS)),--id-backend mobilefacenet --identity $(DEMO_ID_WEIGHTS))
export HF_HUB_OFFLINE ?= 1

.PHONY: env test demo demo-sample bench bench-codec demo-encoder demo-gradstyle demo-hyperstyle demo-styleae train-stylegan train-prior \
	prior-warm prior-gan prior-ship train-prior-cpu clean-env

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(SYSTEM_SITE) $(VENV)
	$(BIN)/python -m pip install -q $(PIP_C) torch torchvision
	$(BIN)/python -m pip install -q $(PIP_C) -e ".[test]"
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], \
		"stylegan_lightning_import_hook.pth").write_text("import stylegan_lightning\n")'  # any import order works
	touch $(STAMP)

env: $(STAMP)  ## create / update the virtual environment

test: $(STAMP)  ## run the test suite (CPU; CUDA tests are skipped without a GPU)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

demo: $(STAMP) $(DEMO_CODEC)  ## codec demo: code the sample faces, decode each layer, grid + bpp/quality table
	$(BIN)/stylegan-lightning evaluate --codec $(DEMO_CODEC) --images data/samples --baselines jpeg,webp,avif,heic \
		--grid outputs/demo/codec-grid.png --csv outputs/demo/codec-table.csv

demo-sample: $(STAMP)  ## generate a sample grid and a truncation sweep from a small generator and print timings
	$(BIN)/stylegan-lightning sample --config configs/demo/sample.yaml

bench: $(STAMP)  ## backbone benchmark tables (ops, generator images/s)
	$(BIN)/python benchmarks/bench_backbone.py

bench-codec: $(STAMP) $(DEMO_CODEC)  ## codec vs JPEG / WebP / AVIF / HEIC on the sample faces, coding times
	$(BIN)/python benchmarks/bench_codec.py --codec $(DEMO_CODEC) --images data/samples

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

$(DEMO_GENERATOR): | $(STAMP)
	$(BIN)/stylegan-lightning init-generator $@ --size 64 --style-dim 64 --n-mlp 4 --channel-max 64 --seed 0

# The demo codec is trained once (CPU, minutes) and then reused; delete it to train again.
$(DEMO_CODEC): configs/demo/codec.yaml | $(DEMO_GENERATOR)
	$(BIN)/stylegan-lightning fit --config configs/demo/codec.yaml

demo-encoder: $(STAMP) $(DEMO_GENERATOR)  ## CPU demo: train a small e4e encoder on synthetic faces (minutes)
	$(BIN)/stylegan-lightning fit --config configs/demo/encoder.yaml

# The demo e4e (exported at the end of the demo-encoder fit) is trained once and reused; delete it to train again.
$(DEMO_E4E): configs/demo/encoder.yaml | $(DEMO_GENERATOR)
	$(BIN)/stylegan-lightning fit --config configs/demo/encoder.yaml

demo-gradstyle: $(STAMP) $(DEMO_E4E)  ## CPU demo: train GradStyle over the demo e4e and generator (minutes)
	$(BIN)/stylegan-lightning fit --config configs/demo/gradstyle.yaml

# The demo W-encoder (exported at the end of its fit) is trained once and reused; delete it to train again.
$(DEMO_W_ENCODER): configs/demo/w_encoder.yaml | $(DEMO_GENERATOR)
	$(BIN)/stylegan-lightning fit --config configs/demo/w_encoder.yaml

demo-hyperstyle: $(STAMP) $(DEMO_W_ENCODER)  ## CPU demo: HyperStyle over the demo W-encoder and generator, 5 iterations (~30 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/hyperstyle.yaml

# The demo attribute classifier (CelebA 64 px from ../shared/data, ~6 min) is trained once and reused.
$(DEMO_CLASSIFIER): configs/demo/classifier.yaml | $(STAMP)
	$(BIN)/stylegan-lightning fit --config configs/demo/classifier.yaml

$(DEMO_PAIRS): $(DEMO_CLASSIFIER) | $(DEMO_GENERATOR)
	$(BIN)/stylegan-lightning label-latents --generator $(DEMO_GENERATOR) --classifier $(DEMO_CLASSIFIER) \
		--n 4000 --out $@

demo-styleae: $(STAMP) $(DEMO_PAIRS)  ## CPU demo: StyleAE on classifier-labelled codes, then StyleAE vs InterFaceGAN (~12 min)
	$(BIN)/stylegan-lightning fit --config configs/demo/styleae.yaml
	$(BIN)/stylegan-lightning compare-edits --styleae outputs/demo/styleae-64.pt --generator $(DEMO_GENERATOR) \
		--classifier $(DEMO_CLASSIFIER) --fit-latents $(DEMO_PAIRS) --latents $(DEMO_PAIRS) --n 64 --steps 6 $(DEMO_IDENTITY) \
		--csv outputs/demo/styleae-table.csv

clean-env:
	rm -rf $(VENV)

"""StyleAEModule with LatentAttributeDataModule on a small generator; the label-latents / edit / compare-edits tools."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from stylegan_lightning.cli import main
from stylegan_lightning.data import (DatasetError, LatentAttributeDataModule, LatentAttributes, join_latent_attributes,
                                     load_latent_attributes)
from stylegan_lightning.editing import AttributeClassifier, export_classifier
from stylegan_lightning.inversion import save_latents
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.styleae import StyleAEModule, load_styleae
from stylegan_lightning.stylegan2 import FrozenGenerator, save_generator

pytestmark = pytest.mark.usefixtures("single_thread")
NAMES = ["smile", "glasses"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from stylegan_lightning.stylegan2 import Generator

    root = tmp_path_factory.mktemp("styleae")
    torch.manual_seed(0)
    generator = save_generator(root / "g16.pt", Generator(16, style_dim=16, n_mlp=2, channel_max=16).eval())
    torch.manual_seed(1)
    classifier = AttributeClassifier(2, resolution=16, width=4, max_width=8, attribute_names=NAMES).eval()
    with torch.no_grad():  # centre and spread the random head's logits on generated faces (probabilities 0.1..0.9)
        frozen = FrozenGenerator.from_file(generator)
        logits = classifier(torch.nn.functional.interpolate(frozen(frozen.sample_w(256)), size=16, mode="bilinear"))
        scale = 1.5 / logits.std(0)
        classifier.head.weight.mul_(scale[:, None])
        classifier.head.bias.copy_((classifier.head.bias - logits.mean(0)) * scale)
    classifier_path = export_classifier(classifier, root / "classifier.pt")
    torch.manual_seed(5)  # a second, independently initialised classifier with the same attribute names
    judge = export_classifier(AttributeClassifier(2, resolution=16, width=4, max_width=8, attribute_names=NAMES).eval(),
                              root / "judge.pt")
    assert main(["label-latents", "--generator", str(generator), "--classifier", str(classifier_path), "--n", "300",
                 "--out", str(root / "pairs.pt")]) == 0
    return {"root": root, "generator": str(generator), "classifier": str(classifier_path),
            "pairs": str(root / "pairs.pt"), "judge": str(judge)}


def _trainer(root, max_steps, **kwargs):
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(root), num_sanity_val_steps=0, **kwargs)


def test_label_latents_file_holds_classifier_labels(files):
    pairs = load_latent_attributes(files["pairs"])
    frozen = FrozenGenerator.from_file(files["generator"])
    from stylegan_lightning.editing import load_attribute_classifier

    classifier = load_attribute_classifier(files["classifier"])
    assert pairs.w.shape == (300, 16) and pairs.labels.shape == (300, 2) and pairs.attribute_names == NAMES
    with torch.no_grad():
        expected = classifier.predict(frozen(pairs.w[:8], noise="const"))
    assert torch.allclose(pairs.labels[:8], expected, atol=1e-5)
    assert pairs.select(["glasses"]).labels.shape == (300, 1)
    with pytest.raises(DatasetError, match="unknown attribute"):
        pairs.select(["beard"])


def test_inverted_images_join_their_dataset_labels(tmp_path):
    w_plus = torch.randn(3, 4, 8)
    latents = save_latents(tmp_path / "latents.pt", ["img/a.png", "img/b.png", "img/c.png"], w_plus, "encoder",
                           "e.pt", {"size": 16})
    (tmp_path / "labels.csv").write_text("file,Smiling,age\na.png,1,30\nc.png,0,\n")
    pairs = join_latent_attributes(latents, tmp_path / "labels.csv")
    assert pairs.attribute_names == ["Smiling", "age"]
    assert torch.allclose(pairs.w, w_plus.mean(1))  # W+ -> W by the mean over layers
    assert pairs.labels[0].tolist() == [1.0, 30.0] and torch.isnan(pairs.labels[1]).all()
    assert pairs.labels[2, 0] == 0.0 and torch.isnan(pairs.labels[2, 1])
    (tmp_path / "other.csv").write_text("file,Smiling\nx.png,1\n")
    with pytest.raises(DatasetError, match="no image"):
        join_latent_attributes(latents, tmp_path / "other.csv")
    with pytest.raises(CheckpointError, match="not a latent-attribute file"):
        load_latent_attributes(latents)


def test_missing_labels_are_imputed_and_continuous_ones_scaled_over_the_data(files, tmp_path):
    """The reference's label preparation: a missing value becomes its attribute's mean over all the pairs, and an
    age in years is min-max scaled over the data (a probability keeps (0, 1) under the default "auto")."""
    nan = float("nan")
    labels = torch.tensor([[0.25, 20.0], [nan, 60.0], [0.75, nan], [0.5, 40.0], [nan, 30.0], [0.1, 70.0]])
    path = LatentAttributes(torch.randn(6, 16), labels, ["smile", "age"]).save(tmp_path / "pairs.pt")
    data = LatentAttributeDataModule(latents=str(path), holdout=2)
    expected = labels.clone()
    expected[[1, 4], 0] = (0.25 + 0.75 + 0.5 + 0.1) / 4
    expected[2, 1] = (20 + 60 + 40 + 30 + 70) / 5
    assert torch.allclose(data.data.labels, expected)
    kept = LatentAttributeDataModule(latents=str(path), holdout=2, missing_labels="ignore").data.labels
    assert torch.equal(torch.isnan(kept), torch.isnan(labels))
    with pytest.raises(ValueError, match="missing_labels"):
        LatentAttributeDataModule(latents=str(path), missing_labels="zero")
    module = StyleAEModule(files["generator"], ["smile", "age"], n_layers=2)
    module.scale_labels(data)
    assert module.model.config["label_ranges"] == [[0.0, 1.0], [20.0, 70.0]]
    assert torch.allclose(module.model.to_coordinates(torch.tensor([0.5, 45.0])), torch.tensor([0.0, 0.0]))
    reference = StyleAEModule(files["generator"], ["smile", "age"], n_layers=2, label_scaling="data")
    reference.scale_labels(data)
    assert sum(reference.model.config["label_ranges"], []) == pytest.approx([0.1, 0.75, 20.0, 70.0])
    fixed = StyleAEModule(files["generator"], ["smile", "age"], n_layers=2, label_ranges=[[0, 1], [0, 100]])
    fixed.scale_labels(data)
    assert fixed.model.config["label_ranges"] == [[0.0, 1.0], [0.0, 100.0]]
    with pytest.raises(ValueError, match="no label_ranges"):
        StyleAEModule(files["generator"], ["smile", "age"], label_ranges=[[0, 1], [0, 100]], label_scaling="data")


def test_module_comparison_follows_the_reference_protocol_with_a_judge(files):
    from stylegan_lightning.editing import load_attribute_classifier
    from stylegan_lightning.styleae import (REFERENCE_METRICS, DirectionEditor, StyleAEEditor,
                                            evaluate_reference_protocol)

    pairs = load_latent_attributes(files["pairs"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = StyleAEModule(files["generator"], NAMES, n_layers=2, classifier=files["classifier"],
                               judge=files["judge"], edit_candidates=4)
        with pytest.raises(ValueError, match="labelling classifier"):
            StyleAEModule(files["generator"], NAMES, classifier=files["classifier"], judge=files["classifier"])
    module.fit_missing_directions(pairs.w, pairs.labels)
    with torch.no_grad():
        results = module.edit_comparison(pairs.w[:10])
        expected = evaluate_reference_protocol(
            pairs.w[:10], module.generator, load_attribute_classifier(files["classifier"]),
            load_attribute_classifier(files["judge"]),
            [StyleAEEditor(module.model), DirectionEditor(module.interfacegan_directions())], NAMES, candidates=4)
    assert set(results["smile"]["styleae"]) == set(REFERENCE_METRICS) - {"identity"}
    for attribute in NAMES:
        for editor in ("styleae", "interfacegan"):
            for metric, value in expected[attribute][editor].items():
                assert results[attribute][editor][metric] == pytest.approx(value, nan_ok=True), (attribute, metric)


def test_module_trains_logs_the_comparison_and_exports(files, tmp_path):
    data = LatentAttributeDataModule(latents=files["pairs"], columns=NAMES, holdout=40, batch_size=8,
                                     eval_batch_size=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = StyleAEModule(files["generator"], NAMES, n_layers=3, lr=3e-3, classifier=files["classifier"],
                               edit_codes=24, edit_steps=4, export_path=str(tmp_path / "styleae.pt"))
        data.setup("fit")
        held = data.val_dataset
        with torch.no_grad():
            start = float(torch.mean((module.model(held.w)[1] - held.w) ** 2))
        trainer = _trainer(tmp_path, 150, val_check_interval=150, check_val_every_n_epoch=None,
                           enable_checkpointing=True)
        trainer.fit(module, data)
    with torch.no_grad():
        error = float(torch.mean((module.model.eval()(held.w)[1] - held.w) ** 2))
    assert error < 0.2 * start  # the round trip E -> D is learned through the frozen generator
    metrics = trainer.callback_metrics
    for key in ("val/recon/w_mse", "val/recon/image_mse", "val/attr/smile/corr", "val/attr/glasses/mse",
                "val/edit/styleae/success", "val/edit/interfacegan/success", "val/edit/styleae/smile/other_change",
                "val/edit/interfacegan/glasses/target_change"):
        assert key in metrics, key
    assert float(metrics["val/recon/w_mse"]) == pytest.approx(error, rel=1e-3)
    assert bool(module.direction_known.all())  # InterFaceGAN fitted on the training pairs at fit start
    exported = load_styleae(tmp_path / "styleae.pt")
    assert torch.allclose(exported.encode(held.w), module.model.encode(held.w), atol=1e-6)
    checkpoint = next((tmp_path / "checkpoints").glob("*.ckpt"))
    from_checkpoint = load_styleae(checkpoint)
    assert from_checkpoint.config == exported.config
    assert torch.allclose(from_checkpoint.decode(held.w), exported.decode(held.w), atol=1e-6)
    restored = StyleAEModule.load_from_checkpoint(checkpoint, weights_only=False)
    assert torch.equal(restored.direction_vectors, module.direction_vectors)
    # the data's label columns must be the model's attributes, in order
    swapped = LatentAttributeDataModule(latents=files["pairs"], columns=NAMES[::-1], holdout=40)
    with pytest.raises(ValueError, match="differ"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(tmp_path / "swapped", 1).fit(StyleAEModule(files["generator"], NAMES), swapped)


def test_edit_and_compare_tools(files, tmp_path, capsys):
    from stylegan_lightning.styleae import StyleAE, save_styleae

    torch.manual_seed(0)
    styleae = save_styleae(tmp_path / "styleae.pt", StyleAE(16, NAMES, n_layers=2))
    pairs = load_latent_attributes(files["pairs"])
    torch.save(pairs.w[:3], tmp_path / "w.pt")
    out = tmp_path / "edit"
    assert main(["edit", "--method", "styleae", "--styleae", str(styleae), "--attribute", "smile", "--value", "0.1",
                 "0.9", "--latents", str(tmp_path / "w.pt"), "--generator", files["generator"],
                 "--out", str(out), "--keep-residual"]) == 0
    assert (out / "edit_grid.png").exists() and "values" in capsys.readouterr().out
    # images are inverted first (--inversion-method), then edited row by row in W+
    from stylegan_lightning.encoders import build_inverter, save_encoder_checkpoint

    faces = tmp_path / "faces"
    faces.mkdir()
    for source in sorted((Path(__file__).resolve().parents[1] / "data/samples/celebahq").glob("*.jpg"))[:2]:
        shutil.copy(source, faces / source.name)
    torch.manual_seed(2)
    inverter = build_inverter("w", FrozenGenerator.from_file(files["generator"]), input_size=32, blocks=(1, 1, 1, 1),
                              channels=(16, 16, 16, 16))
    encoder = save_encoder_checkpoint(tmp_path / "w-encoder.pt", inverter)
    assert main(["edit", "--method", "styleae", "--styleae", str(styleae), "--attribute", "glasses", "--shift", "-1",
                 "1", "--images", str(faces), "--checkpoint", str(encoder), "--inversion-method", "encoder",
                 "--out", str(tmp_path / "edit-images")]) == 0
    assert len(list((tmp_path / "edit-images" / "strips").glob("*.png"))) == 2
    capsys.readouterr()
    assert main(["edit", "--method", "styleae", "--styleae", str(styleae), "--attribute", "beard", "--shift", "1",
                 "--latents", str(tmp_path / "w.pt"), "--generator", files["generator"], "--out", str(out)]) == 2
    assert "unknown attribute 'beard'" in capsys.readouterr().err
    assert main(["edit", "--method", "styleae", "--styleae", str(styleae), "--attribute", "smile",
                 "--latents", str(tmp_path / "w.pt"), "--generator", files["generator"]]) == 2
    assert "exactly one of --value or --shift" in capsys.readouterr().err
    compare = ["compare-edits", "--styleae", str(styleae), "--generator", files["generator"], "--classifier",
               files["classifier"], "--fit-latents", files["pairs"], "--latents", files["pairs"], "--n", "12"]
    assert main([*compare, "--protocol", "steps", "--steps", "3", "--csv", str(tmp_path / "table.csv")]) == 0
    printed = capsys.readouterr().out
    assert "interfacegan" in printed and "styleae" in printed
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert rows[0].startswith("attribute,editor,success,target") and len(rows) == 1 + 2 * 2 + 2
    # the reference protocol (the default) needs a judge other than the labelling classifier
    assert main(compare) == 2
    assert "--judge" in capsys.readouterr().err
    copy = shutil.copy(files["classifier"], tmp_path / "copy-of-labeller.pt")
    assert main([*compare, "--judge", str(copy)]) == 2
    assert "same classifier" in capsys.readouterr().err
    judge = files["judge"]
    assert main([*compare, "--judge", str(judge), "--candidates", "5", "--csv", str(tmp_path / "ref.csv")]) == 0
    assert "success by the judge" in capsys.readouterr().out
    table = list(csv.reader((tmp_path / "ref.csv").open()))
    assert table[0][:4] == ["attribute", "editor", "success (judge)", "all succeed"] and len(table) == 1 + 2 * 2 + 2
    for attribute in NAMES:  # the codes every editor edited are at most the fewest any editor edited
        pair = [row for row in table if row[0] == attribute]
        assert pair[0][3] == pair[1][3] and 0 <= float(pair[0][3]) <= 12 * min(float(row[2]) for row in pair) + 1e-6
    assert main(["compare-edits", "--styleae", str(styleae), "--generator", files["generator"], "--classifier",
                 files["classifier"], "--judge", str(judge)]) == 2
    assert "no InterFaceGAN direction" in capsys.readouterr().err


def test_datamodule_errors(files):
    with pytest.raises(DatasetError, match="needs latents"):
        LatentAttributeDataModule()
    with pytest.raises(DatasetError, match="nothing to train"):
        LatentAttributeDataModule(latents=files["pairs"], holdout=300).setup("fit")
    with pytest.raises(DatasetError, match="NaN"):
        LatentAttributes(torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 1), ["a"])

"""Training and evaluation command lines end to end, on a tiny synthetic FracAtlas-shaped folder."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fracture_model import evaluate, predict, train
from fracture_model.model_card import read_card


@pytest.fixture(scope="module")
def trained(tiny_fracatlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    code = train.main([
        "--data", str(tiny_fracatlas), "--out", str(out), "--image-size", "64", "--batch-size", "8",
        "--frozen-epochs", "1", "--epochs", "1", "--seed", "3",
    ])
    assert code == 0
    return out


def test_training_writes_model_card_and_split(trained, tiny_fracatlas):
    assert (trained / "fracture_cnn.keras").stat().st_size > 1_000_000
    card = read_card(trained)
    assert card["input_size"] == 64
    assert card["positive_class"] == "fractured"
    assert 0.0 < card["operating_threshold"] < 1.0
    assert card["operating_threshold_chosen_on"] == "validation split"
    assert card["training"]["seed"] == 3 and "--seed 3" in card["training"]["command"]
    assert len(card["data"]["fingerprint_sha256"]) == 64

    split = pd.read_csv(trained / "split.csv")
    assert set(split["split"]) == {"train", "validation", "test"}
    assert (split.groupby("group")["split"].nunique() == 1).all()
    assert len(split) == 78  # two truncated originals dropped
    duplicates = split[split["image_id"].isin(["IMG0000005.jpg", "IMG0000205.jpg"])]
    assert duplicates["split"].nunique() == 1


def test_training_help_answers():
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--help"])
    assert exit_info.value.code == 0


def test_evaluation_regenerates_metrics_predictions_and_cases(trained, tiny_fracatlas):
    assert evaluate.main(["--model-dir", str(trained), "--data", str(tiny_fracatlas)]) == 0
    folder = trained / "evaluation"
    predictions = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    split = pd.read_csv(trained / "split.csv")
    assert sorted(predictions["image_id"]) == sorted(split.loc[split["split"] == "test", "image_id"])

    results = json.loads((folder / "metrics.json").read_text())
    assert results["roc_auc"] == pytest.approx(roc_auc_score(predictions["fractured"], predictions["probability_fractured"]))
    low, high = results["roc_auc_ci95"]
    assert low <= results["roc_auc"] <= high
    threshold = read_card(trained)["operating_threshold"]
    called = predictions["probability_fractured"] >= threshold - 1e-6
    point = results["operating_point"]
    assert point["true_positives"] == int((called & (predictions["fractured"] == 1)).sum())

    wrong = predictions[predictions["outcome"].isin(["false positive", "false negative"])]
    assert all((folder / image).exists() for image in wrong["case_image"])
    assert len(list((folder / "cases").glob("*.jpg"))) == len(wrong)
    card = read_card(trained)
    assert card["test"]["roc_auc"] == results["roc_auc"]


def test_predict_cli_scores_good_files_and_reports_bad_ones(trained, tiny_fracatlas, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    folder = tiny_fracatlas / "images" / "Fractured"
    code = predict.main([str(bad), str(folder), "--model-dir", str(trained)])
    captured = capsys.readouterr()
    assert code == 1
    rows = pd.read_csv(__import__("io").StringIO(captured.out))
    assert list(rows.columns) == ["path", "probability_fractured", "decision"]
    assert len(rows) == len(list(folder.glob("*.jpg")))
    assert rows["probability_fractured"].between(0, 1).all()
    threshold = read_card(trained)["operating_threshold"]
    expected = np.where(rows["probability_fractured"] >= threshold, "fractured", "not fractured")
    # the CSV rounds to 6 decimals: only compare where rounding cannot flip the decision
    clear = (rows["probability_fractured"] - threshold).abs() > 1e-6
    assert (rows["decision"][clear] == expected[clear]).all()
    assert "notes.png" in captured.err and "Traceback" not in captured.err
    assert str(bad) not in captured.out

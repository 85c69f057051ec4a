"""Training and evaluation command lines end to end, on a tiny synthetic FracAtlas-shaped folder."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fracture_model import data, evaluate, lite, predict, train, views
from fracture_model.metrics import choose_threshold
from fracture_model.model_card import file_sha256, read_card
from fracture_model.predictor import Predictor


@pytest.fixture(scope="module")
def trained(tiny_trained_run, tmp_path_factory):
    """A copy of the session's run (``tests/conftest.py``: 64 px, one epoch per phase, seed 3), for this module to
    evaluate."""
    out = tmp_path_factory.mktemp("model") / "run"
    shutil.copytree(tiny_trained_run, out)
    return out


def test_training_writes_model_card_and_split(trained, tiny_fracatlas):
    # the weights (about 14 MB) without the optimizer's state (which would triple the file)
    assert 10_000_000 < (trained / "fracture_cnn.keras").stat().st_size < 20_000_000
    card = read_card(trained)
    assert card["input_size"] == 64
    assert card["positive_class"] == "fractured"
    assert 0.0 < card["operating_threshold"] < 1.0
    assert card["operating_threshold_chosen_on"] == "validation split"
    assert card["training"]["seed"] == 3 and "--seed 3" in card["training"]["command"]
    assert card["training"]["training_seed"] == 3  # --seed, when no other training seed is given
    assert card["training"]["levers"] == ["scale", "rotation"]  # the levers that paid on validation, by default
    assert len(card["data"]["fingerprint_sha256"]) == 64
    # the LiteRT copy that scores on the CPU, tied to this model file (Predictor.load checks it)
    assert card["fast_forward"]["converted_from_sha256"] == file_sha256(trained / "fracture_cnn.keras")
    assert (trained / card["fast_forward"]["file"]).stat().st_size > 1_000_000
    # box supervision is on by default, and its validation figure is recorded
    assert card["box_supervision"]["weight"] == 1.0
    assert 0.0 <= card["box_supervision"]["validation_cell_pointing"] <= 1.0
    history = pd.read_csv(trained / "history.csv")
    columns = set(history.columns)
    assert {"evidence_map_loss", "probability_fractured_loss", "val_roc_auc", "val_cell_pointing"} <= columns
    assert history["evidence_map_loss"].notna().all() and (history["evidence_map_loss"] >= 0).all()
    # the recorded figure is the one of the kept (best validation AUC) epoch, across both phases
    best = history["val_roc_auc"].idxmax()
    assert card["box_supervision"]["validation_cell_pointing"] == pytest.approx(history.loc[best, "val_cell_pointing"])

    split = pd.read_csv(trained / "split.csv")
    assert set(split["split"]) == {"train", "validation", "test"}
    assert (split.groupby("group")["split"].nunique() == 1).all()
    assert len(split) == 78  # two truncated originals dropped
    duplicates = split[split["image_id"].isin(["IMG0000005.jpg", "IMG0000205.jpg"])]
    assert duplicates["split"].nunique() == 1


def test_training_without_box_supervision_is_the_plain_recipe(tiny_plain_run, tiny_fracatlas, tmp_path):
    # the run (tests/conftest.py): --epochs 3 and a STOP file, --box-loss-weight 0, --levers rotation,overlays,
    # --training-seed 8, and no LiteRT converter (as under JAX); a copy, since the LiteRT command below changes it
    run = tmp_path / "run"
    shutil.copytree(tiny_plain_run, run)
    card = read_card(run)
    # another training seed trains another run on the same split (the split follows --seed alone)
    assert (card["training"]["seed"], card["training"]["training_seed"]) == (3, 8)
    frame = data.load_index(tiny_fracatlas)
    expected = dict(zip(frame["image_id"], data.assign_splits(frame, seed=3), strict=True))
    split = pd.read_csv(run / "split.csv")
    written = dict(zip(split["image_id"], split["split"], strict=True))
    assert written == {key: expected[key] for key in split["image_id"]}
    assert card["box_supervision"] is None
    assert card["training"]["levers"] == ["rotation", "overlays"]
    # the description names all four parts of the recipe, so the card says which were off
    assert card["training"]["augmentation"].endswith(
        "Levers on: rotation, overlays; off, so the first recipe's mild version of each: scale, appearance.")
    history = pd.read_csv(run / "history.csv")
    assert "evidence_map_loss" not in history.columns
    assert len(history) == 1
    assert (run / train.CHECKPOINT_FILE).stat().st_size > 10_000_000
    assert card["fast_forward"] is None and not (run / "fracture_cnn.tflite").exists()
    assert lite.main(["--model-dir", str(run)]) == 0
    assert read_card(run)["fast_forward"]["converted_from_sha256"] == file_sha256(run / "fracture_cnn.keras")
    assert Predictor.load(run).predict(np.zeros((64, 64), np.float32)) is not None


def test_training_refuses_unknown_levers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--data", "d", "--out", "o", "--levers", "scale,zoom"])
    assert exit_info.value.code == 2 and "unknown levers ['zoom']" in capsys.readouterr().err


def test_training_help_answers():
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--help"])
    assert exit_info.value.code == 0


@pytest.fixture(scope="module")
def evaluated(trained, tiny_fracatlas):
    assert evaluate.main(["--model-dir", str(trained), "--data", str(tiny_fracatlas)]) == 0
    return trained / "evaluation"


def test_evaluation_regenerates_metrics_predictions_and_cases(trained, evaluated):
    folder = evaluated
    predictions = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    split = pd.read_csv(trained / "split.csv")
    assert sorted(predictions["image_id"]) == sorted(split.loc[split["split"] == "test", "image_id"])

    results = json.loads((folder / "metrics.json").read_text())
    expected_auc = roc_auc_score(predictions["fractured"], predictions["probability_fractured"])
    assert results["roc_auc"] == pytest.approx(expected_auc)
    low, high = results["roc_auc_ci95"]
    assert low <= results["roc_auc"] <= high
    threshold = read_card(trained)["operating_threshold"]
    called = predictions["probability_fractured"] >= threshold - 1e-6
    point = results["operating_point"]
    assert point["true_positives"] == int((called & (predictions["fractured"] == 1)).sum())

    # every test case has its image (the case browser), not only the misclassified ones
    assert all(image and (folder / image).exists() for image in predictions["case_image"])
    assert len(list((folder / "cases").glob("*.jpg"))) == len(predictions)
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
    assert list(rows.columns) == ["path", "probability_fractured", "decision", "in_distribution"]
    assert len(rows) == len(list(folder.glob("*.jpg")))
    assert rows["probability_fractured"].between(0, 1).all()
    threshold = read_card(trained)["operating_threshold"]
    expected = np.where(rows["probability_fractured"] >= threshold, "fractured", "not fractured")
    # the CSV rounds to 6 decimals: only compare where rounding cannot flip the decision
    clear = (rows["probability_fractured"] - threshold).abs() > 1e-6
    assert (rows["decision"][clear] == expected[clear]).all()
    assert "notes.png" in captured.err and "Traceback" not in captured.err
    assert str(bad) not in captured.out


def test_evaluation_scores_heatmaps_against_the_boxes(evaluated, tiny_fracatlas):
    """Localisation end to end on the synthetic fracture lines: every fractured test image, every method."""
    from fracture_model.explain import DEFAULT_METHOD, METHODS
    from fracture_model.localisation import POINTING_TOLERANCE_PX, load_boxes

    results = json.loads((evaluated / "metrics.json").read_text())
    predictions = pd.read_csv(evaluated / "predictions.csv")
    rows = pd.read_csv(evaluated / "localisation.csv")
    fractured = predictions[predictions["fractured"] == 1]
    boxes = load_boxes(tiny_fracatlas / "annotations" / "coco_fractures.json")
    assert len(fractured) >= 1 and all(boxes[name] for name in fractured["image_id"])

    found = results["localisation"]
    assert found["tolerance_px"] == POINTING_TOLERANCE_PX and found["images"] == len(fractured)
    assert set(found["by_method"]) == set(METHODS) and found["default_method"] == DEFAULT_METHOD
    assert len(rows) == len(fractured) * len(METHODS)
    for method, figures in found["by_method"].items():
        mine = rows[rows["method"] == method]
        assert figures["images"] == len(fractured)
        assert figures["pointing_hit_rate"] == pytest.approx(mine["pointing_hit"].mean())
        low, high = figures["pointing_hit_rate_ci95"]
        assert low <= figures["pointing_hit_rate"] <= high
        assert figures["energy_inside_mean"] == pytest.approx(mine["energy_inside"].mean(), abs=1e-5)
        assert 0.0 < figures["box_area_share_mean"] < 0.1  # a 16 x 4 line in a 96 x 80 image
    assert set(found["by_body_part"]) == set(fractured["body_part"])

    # predictions.csv carries the default method's figures for fractured cases, blanks for the others
    default = rows[rows["method"] == DEFAULT_METHOD].set_index("image_id")
    mine = fractured.set_index("image_id")
    assert (mine["pointing_hit"] == default.loc[mine.index, "pointing_hit"]).all()
    assert (mine["peak_x"].fillna(-1) == default.loc[mine.index, "peak_x"].fillna(-1)).all()
    assert (default["flat_heatmap"] == default["peak_x"].isna()).all()
    assert (default.loc[default["flat_heatmap"] == 1, "pointing_hit"] == 0).all()  # a flat map points nowhere
    assert predictions.loc[predictions["fractured"] == 0, ["pointing_hit", "energy_inside"]].isna().all().all()
    peaks = predictions.dropna(subset=["peak_x"])
    assert peaks["peak_x"].between(0, 79).all() and peaks["peak_y"].between(0, 95).all()
    assert peaks["peak_brightness_rank"].between(0, 1).all()
    assert results["implant_heatmaps"]["images"] == int(
        ((predictions["hardware"] == 1) & (predictions["decision"] == "fractured")).sum())


def test_evaluation_runs_the_randomisation_check(evaluated):
    from fracture_model.explain import METHODS
    from fracture_model.sanity import SPEARMAN_BOUND

    results = json.loads((evaluated / "metrics.json").read_text())
    check = results["sanity_check"]
    assert check["bound"] == SPEARMAN_BOUND and 1 <= check["images"] <= 16
    assert [stage["name"] for stage in check["stages"]] == ["output layer", "top blocks"]
    assert set(check["by_method"]) == set(METHODS)
    assert results["explanation_methods"] == check["passed"]
    for method, summary in check["by_method"].items():
        assert summary["passed"] == (method in results["explanation_methods"])


def test_case_images_show_the_boxes_and_stay_small(evaluated, tiny_fracatlas):
    import cv2

    from fracture_model.evaluate import CASE_IMAGE_SIDE
    from fracture_model.localisation import load_boxes

    predictions = pd.read_csv(evaluated / "predictions.csv", keep_default_na=False)
    boxes = load_boxes(tiny_fracatlas / "annotations" / "coco_fractures.json")
    for case in predictions.itertuples():
        image = cv2.cvtColor(cv2.imread(str(evaluated / case.case_image)), cv2.COLOR_BGR2RGB)
        assert image.shape[0] <= CASE_IMAGE_SIDE and image.shape[1] <= 2 * CASE_IMAGE_SIDE
        panel = image[:, : image.shape[1] // 2].astype(int)
        magenta = (panel[..., 0] > 180) & (panel[..., 1] < 90) & (panel[..., 2] > 180)
        if case.fractured:
            box = boxes[case.image_id][0]  # 96 x 80 images are stored at full size
            assert magenta[int(box.top), int(box.left) : int(box.right)].mean() > 0.8
        else:
            assert not magenta.any()


def test_test_time_views_are_fitted_on_validation_and_used_by_the_predictor(trained, tiny_fracatlas, tmp_path):
    folder = tmp_path / "with_views"
    shutil.copytree(trained, folder)
    before = read_card(folder)
    assert views.main(["--model-dir", str(folder), "--data", str(tiny_fracatlas), "--zoom", "0.7",
                       "--flip", "vertical"]) == 0
    card = read_card(folder)
    assert card["test_time_views"]["zoom_factors"] == [0.7]
    assert card["test_time_views"]["flips"] == ["vertical"]
    assert card["test_time_views"]["chosen_on"] == "validation split"

    predictor = Predictor.load(folder)
    assert predictor.test_time_views == card["test_time_views"]
    split = pd.read_csv(folder / "split.csv")
    validation = split[split["split"] == "validation"]
    from fracture_model.data import load_inputs

    inputs = load_inputs(tiny_fracatlas, list(validation["path"]), predictor.image_size).astype(np.float32) / 255.0
    probabilities = predictor.probabilities(inputs)
    labels = validation["fractured"].to_numpy()
    # the card's threshold and validation figure are those of the views the predictor now scores with
    assert card["operating_threshold"] == pytest.approx(choose_threshold(labels, probabilities, "youden"))
    assert card["validation"]["roc_auc"] == pytest.approx(roc_auc_score(labels, probabilities))
    assert card["validation"]["roc_auc_whole_image_alone"] == pytest.approx(before["validation"]["roc_auc"], abs=1e-4)
    low, high = card["operating_threshold_bootstrap_95"]
    assert low <= high

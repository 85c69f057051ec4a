"""FracAtlas index, the group-aware split, augmentation and the Keras input pipeline.

The split keeps every *group* on one side of train / validation / test. A group joins
(a) images that ``leakage_groups.csv`` marks as exact or near duplicates and (b) blocks of ten
neighbouring image IDs (``id // 10``), which are often views of the same patient. Images whose
original was truncated (a flat grey band, a trivial "not fractured" cue) are dropped.
The label comes from the folder (``Fractured/`` or ``Non_fractured/``), never from ``dataset.csv``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from fracture_model import localisation
from fracture_model.imaging import read_radiograph
from fracture_model.preprocess import Letterbox, preprocess

BODY_PARTS = ("hand", "leg", "hip", "shoulder", "mixed")
NEIGHBOUR_BLOCK = 10
SPLITS = ("train", "validation", "test")


def _body_part(row: pd.Series) -> str:
    parts = [part for part in BODY_PARTS if int(row[part]) == 1]
    return parts[0] if len(parts) == 1 else "mixed"


def _union_find_groups(pairs: list[tuple[str, str]], items: list[str]) -> dict[str, str]:
    parent = {item: item for item in items}

    def find(item: str) -> str:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in pairs:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    return {item: find(item) for item in items}


def load_index(data_dir: Path | str) -> pd.DataFrame:
    """One row per usable image: path, label, body part, hardware, view, group; truncated images dropped.

    Columns: ``image_id``, ``path`` (relative to ``data_dir/images``), ``fractured`` (0/1 from the folder),
    ``body_part``, ``hardware`` (0/1), ``group``.
    """
    data_dir = Path(data_dir)
    index = pd.read_csv(data_dir / "image_index.csv")
    groups = pd.read_csv(data_dir / "leakage_groups.csv")
    details = pd.read_csv(data_dir / "dataset.csv")

    frame = index[["dst", "truncated"]].rename(columns={"dst": "path"})
    frame = frame[frame["truncated"] == 0].drop(columns="truncated")
    frame["image_id"] = frame["path"].str.split("/").str[-1]
    frame["fractured"] = frame["path"].str.startswith("Fractured/").astype(int)
    frame = frame.merge(groups[["file", "group_id"]], left_on="path", right_on="file", how="left").drop(columns="file")
    details = details.assign(body_part=details.apply(_body_part, axis=1))
    frame = frame.merge(details[["image_id", "body_part", "hardware"]], on="image_id", how="left")
    frame["hardware"] = frame["hardware"].fillna(0).astype(int)
    frame["body_part"] = frame["body_part"].fillna("mixed")

    numbers = frame["image_id"].str.extract(r"(\d+)")[0].astype(int)
    block = "block_" + (numbers // NEIGHBOUR_BLOCK).astype(str)
    duplicate = frame["group_id"].fillna(frame["image_id"])
    items = sorted(set(block) | set(duplicate))
    pairs = list(zip(block, duplicate, strict=True))
    roots = _union_find_groups(pairs, items)
    frame["group"] = [roots[b] for b in block]
    return frame.drop(columns="group_id").sort_values("image_id").reset_index(drop=True)


def assign_splits(
    frame: pd.DataFrame, seed: int, test_fraction: float = 0.2, validation_fraction: float = 0.15
) -> pd.Series:
    """Group-aware, label-stratified split into train / validation / test (returns one label per row).

    Uses ``StratifiedGroupKFold`` with 20 folds: the first ``test_fraction * 20`` folds are the test
    split, the next ``validation_fraction * 20`` validation, the rest training.
    """
    folds = 20
    n_test, n_validation = round(test_fraction * folds), round(validation_fraction * folds)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    split = pd.Series("train", index=frame.index)
    for fold, (_, held) in enumerate(splitter.split(frame, frame["fractured"], frame["group"])):
        if fold < n_test:
            split.iloc[held] = "test"
        elif fold < n_test + n_validation:
            split.iloc[held] = "validation"
    return split


INDEX_FILES = ("image_index.csv", "leakage_groups.csv", "dataset.csv")
"""The index files whose bytes the data fingerprint covers (with the list of images used)."""


def data_fingerprint(data_dir: Path | str, frame: pd.DataFrame) -> str:
    """SHA-256 over the index files and the list of images used: recorded in the model card."""
    data_dir = Path(data_dir)
    digest = hashlib.sha256()
    for name in INDEX_FILES:
        digest.update((data_dir / name).read_bytes())
    digest.update("\n".join(frame["path"]).encode())
    return digest.hexdigest()


def load_inputs(data_dir: Path | str, paths: list[str], image_size: int) -> np.ndarray:
    """Decode and preprocess images exactly as the app does; returns uint8 (n, size, size, 1) to save memory.

    ``paths`` are relative to ``data_dir/images`` (the ``path`` column of ``load_index``).
    """
    images_dir = Path(data_dir) / "images"
    inputs = np.empty((len(paths), image_size, image_size, 1), dtype=np.uint8)
    for i, path in enumerate(paths):
        radiograph = read_radiograph((images_dir / path).read_bytes())
        inputs[i] = np.round(preprocess(radiograph.pixels, image_size) * 255.0).astype(np.uint8)
    return inputs


def load_shifted_inputs(
    data_dir: Path | str, frame: pd.DataFrame, boxes: dict[str, tuple[localisation.Box, ...]], image_size: int,
    kind: str, seed: int, zoom_factor: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A shifted copy of ``frame``'s images (``shifts.shifted_images``), preprocessed as the app does.

    Returns uint8 inputs (n, size, size, 1) and their labels (images the shift skips are left out).
    """
    from fracture_model import shifts

    images_dir = Path(data_dir) / "images"
    paths, labels = list(frame["path"]), frame["fractured"].to_numpy()
    rows = [(int(label), boxes.get(image_id, ())) for label, image_id in zip(labels, frame["image_id"], strict=True)]

    def load(index: int) -> np.ndarray:
        return read_radiograph((images_dir / paths[index]).read_bytes()).pixels

    inputs, kept = [], []
    for index, pixels, _ in shifts.shifted_images(rows, load, kind, seed, zoom_factor):
        inputs.append(np.round(preprocess(pixels, image_size) * 255.0).astype(np.uint8))
        kept.append(index)
    return np.stack(inputs), labels[kept]


def input_boxes(
    data_dir: Path | str, frame: pd.DataFrame, image_size: int, boxes: dict[str, tuple[localisation.Box, ...]]
) -> list[tuple[tuple[localisation.Box, ...], float]]:
    """Per row of ``frame``: its fracture boxes in network-input pixels and the pointing tolerance there.

    The boxes go through the same letterbox and resize as the image (``Letterbox``); the tolerance is
    ``localisation.POINTING_TOLERANCE_PX`` scaled the same way. Rows without boxes get ``((), 0.0)``.
    """
    images_dir = Path(data_dir) / "images"
    found = []
    for image_id, path in zip(frame["image_id"], frame["path"], strict=True):
        own = boxes.get(image_id, ())
        if not own:
            found.append(((), 0.0))
            continue
        shape = read_radiograph((images_dir / path).read_bytes()).pixels.shape
        letterbox = Letterbox(shape, image_size)
        found.append((tuple(localisation.box_to_input(box, letterbox) for box in own),
                      localisation.POINTING_TOLERANCE_PX * letterbox.scale))
    return found


def boxed_cell_targets(found: list[tuple[tuple[localisation.Box, ...], float]], image_size: int,
                       cells: int) -> tuple[np.ndarray, np.ndarray]:
    """From ``input_boxes``' rows: which rows have boxes (bool, (n,)) and, for those rows, their ``cell_targets``
    ((boxed, cells, cells, 1)), what the evidence map's pointing rate is measured against."""
    keep = np.array([bool(box) for box, _ in found], dtype=bool)
    shape = (image_size, image_size)
    targets = np.array([cell_targets(localisation.near_boxes_mask(box, shape, tolerance), cells)
                        for box, tolerance in found if box]).reshape(-1, cells, cells, 1)
    return keep, targets


def cell_targets(hit_mask: np.ndarray, cells: int) -> np.ndarray:
    """Which cells of a ``cells`` x ``cells`` feature map count as pointing at the fracture: (cells, cells) 0/1.

    ``hit_mask`` marks the input pixels where a heatmap peak would be a pointing-game hit. A cell counts
    when its centre pixel is such a pixel; when no centre is (a box smaller than a cell, between centres),
    the cells holding the largest share of hit pixels count instead. All zero when the mask is empty
    (e.g. the box was shifted out of the frame by augmentation).
    """
    size = hit_mask.shape[0]
    step = size / cells
    centres = (np.arange(cells) * step + step / 2).astype(int)
    targets = hit_mask[np.ix_(centres, centres)].astype(np.float32)
    if targets.any() or not hit_mask.any():
        return targets
    import cv2

    coverage = cv2.resize(hit_mask.astype(np.float32), (cells, cells), interpolation=cv2.INTER_AREA)
    return (coverage >= coverage.max()).astype(np.float32)


def augment(image: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None):
    """Anatomy-preserving augmentation of one preprocessed image (float32, (size, size, 1), [0, 1]).

    Horizontal flip (left and right limbs), rotation within 15 degrees, zoom 0.85-1.15, shift within
    8%, and brightness, contrast and gamma jitter. No vertical flips or shears: bones keep their shape.

    With ``mask`` (a (size, size) map over the same image, e.g. where the fracture is), returns
    ``(image, mask)`` with the mask moved by the same flip, rotation, zoom and shift.
    """
    import cv2

    size = image.shape[0]
    plane = image[..., 0]
    flip = rng.random() < 0.5
    if flip:
        plane = plane[:, ::-1]
    angle = rng.uniform(-15.0, 15.0)
    zoom = rng.uniform(0.85, 1.15)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    matrix[:, 2] += rng.uniform(-0.08, 0.08, size=2) * size
    plane = cv2.warpAffine(
        np.ascontiguousarray(plane), matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0
    )
    plane = np.clip(plane, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    plane = (plane - 0.5) * rng.uniform(0.85, 1.15) + 0.5 + rng.uniform(-0.08, 0.08)
    image = np.clip(plane, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    if mask is None:
        return image
    mask = mask[:, ::-1] if flip else mask
    mask = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.uint8), matrix, (size, size),
                          flags=cv2.INTER_NEAREST, borderValue=0)
    return image, mask


ROBUST_MAX_ZOOM = 6.0
"""Largest zoom of ``augment_robust``'s close-up crops: a sixth of the image's side fills the input."""


def _content_mask(plane: np.ndarray) -> np.ndarray:
    """The radiograph's own pixels inside the letterboxed square: the rows and columns not entirely black."""
    rows, columns = plane.max(axis=1) > 0, plane.max(axis=0) > 0
    return (rows[:, np.newaxis] & columns[np.newaxis, :]).astype(np.uint8)


def _close_up_centre(plane: np.ndarray, mask: np.ndarray | None, label: int, side: float,
                     rng: np.random.Generator) -> tuple[float, float] | None:
    """Centre (x, y) of a close-up crop of ``side`` pixels, or None when no honest crop exists.

    Fractured images: a crop that keeps the whole region near a box (``mask``) inside, so the label stays
    true; without a box, none. Normal images: centred on a random bright (bone) pixel.
    """
    size = plane.shape[0]
    if label == 1:
        if mask is None or not mask.any():
            return None
        rows, columns = np.nonzero(mask)
        x0, x1, y0, y1 = columns.min(), columns.max() + 1, rows.min(), rows.max() + 1
        if max(x1 - x0, y1 - y0) > side * 0.9:
            return None
        return (rng.uniform(x1 - side / 2, x0 + side / 2), rng.uniform(y1 - side / 2, y0 + side / 2))
    from fracture_model.shifts import bone_pixels

    if not (plane > 0).any():
        return None
    rows, columns = bone_pixels(plane)
    pick = rng.integers(len(rows))
    half = side / 2
    return (float(np.clip(columns[pick] + 0.5, half, size - half)), float(np.clip(rows[pick] + 0.5, half, size - half)))


ROBUST_LEVERS = ("scale", "rotation", "appearance", "overlays")
"""The robust recipe's levers, each of which can be trained alone (``python -m fracture_model.train --levers``)."""
LEVERS = ROBUST_LEVERS + ("canvas",)
"""Every lever ``--levers`` takes: the robust recipe's, and ``canvas`` (off unless asked for, so that the recipes
trained before it came keep their meaning): in half the images the turned image is shrunk so that the whole
square stays in view, as software that rotates a radiograph onto an enlarged canvas leaves it (by
1 / (|cos| + |sin|) of the angle: 0.71 at 45 degrees). The robustness benchmark's rotations are made that way, and
on validation the shrink costs the shipped model about as much ROC AUC as the turn itself (README)."""
CANVAS_SHARE = 0.5
"""The share of images the ``canvas`` lever shrinks (``--canvas-share``): its GPU runs ranked rotations better
but the mix and the smallest close-ups worse at 0.5, so a lower share is the next thing to try (README)."""
TRAINING_LEVERS = ("scale", "rotation")
"""The training command's default: the levers that paid on validation when each was tried alone and together
(README, "What was tried"); appearance and overlays keep the first recipe's mild version."""


def check_levers(levers: tuple[str, ...]) -> tuple[str, ...]:
    """``levers`` if each is one of ``LEVERS``; ValueError naming the others."""
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        raise ValueError(f"unknown levers {unknown}; the levers are {','.join(LEVERS)}")
    return tuple(levers)


def levers_sentence(levers: tuple[str, ...]) -> str:
    """Which of the robust recipe's parts were on, for the model card: its description names all four."""
    on = check_levers(levers)
    off = [lever for lever in ROBUST_LEVERS if lever not in on]
    return (f"Levers on: {', '.join(on) or 'none'}; off, so the first recipe's mild version of each: "
            f"{', '.join(off) or 'none'}.")


def augment_robust(image: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None, label: int = 0,
                   levers: tuple[str, ...] = ROBUST_LEVERS, canvas_share: float = CANVAS_SHARE):
    """Augmentation towards radiographs from other sources, for one preprocessed image (float32, (size, size, 1)).

    Geometry, one affine map: in half the images a close-up crop zooming 1x to 6x (log-uniform), centred
    near a fracture box on fractured images (the whole box stays in the crop; no crop without a box) and
    on random bone on normal ones; otherwise zoom 0.85-1.15 and shift within 8%. Rotation at any angle
    in half the images (the corners it leaves are black), within 15 degrees otherwise; horizontal flip
    (p 0.5) and vertical flip (p 0.2). Appearance: gamma, contrast and exposure curves; local contrast
    equalisation (CLAHE, p 0.15); synthetic side letters, burned-in text, rulers, watermarks and arrows
    (p 0.5, 1-4 marks, the same rate for both labels); down-scaling to 128-256 px and back (p 0.3), blur
    (p 0.2), noise (p 0.3), JPEG re-compression at quality 30-90 (p 0.3); inverted polarity (p 0.08).

    With ``mask`` (the pixels near the fracture boxes), returns ``(image, mask)`` with the mask moved
    by the same geometry.

    ``levers`` (``ROBUST_LEVERS``, all four by default) switches the recipe's parts, to measure each alone:
    ``scale`` the close-ups; ``rotation`` any angle and the vertical flip; ``appearance`` the strong curves,
    local contrast, inversion, down-scaling, blur, noise and JPEG; ``overlays`` the marks. A lever that is
    off leaves the first recipe's (``augment``) mild version of its part: zoom 0.85-1.15 and shift, rotation
    within 15 degrees, gamma 0.8-1.25, contrast 0.85-1.15 and exposure within 0.08, no marks. With no lever
    this is the first recipe; the horizontal flip is always on. ``canvas`` (``LEVERS``; off by default) shrinks
    ``canvas_share`` of the images (half by default) by 1 / (|cos| + |sin|) of their angle, so that the whole
    turned square stays in view.
    """
    import cv2

    from fracture_model import overlays

    check_levers(levers)
    size = image.shape[0]
    plane = np.ascontiguousarray(image[..., 0], dtype=np.float32)
    content = _content_mask(plane)
    centre, zoom = None, 1.0
    if "scale" in levers and rng.random() < 0.5:
        zoom = float(np.exp(rng.uniform(0.0, np.log(ROBUST_MAX_ZOOM))))
        centre = _close_up_centre(plane, mask, label, size / zoom, rng)
    if centre is None:
        zoom = rng.uniform(0.85, 1.15)
        centre = tuple(size / 2 + rng.uniform(-0.08, 0.08, size=2) * size)
    angle = rng.uniform(0.0, 360.0) if "rotation" in levers and rng.random() < 0.5 else rng.uniform(-15.0, 15.0)
    theta = np.deg2rad(angle)
    if "canvas" in levers and rng.random() < canvas_share:  # drawn only with the lever: other recipes draw as before
        zoom /= abs(np.cos(theta)) + abs(np.sin(theta))
    flip_x = -1.0 if rng.random() < 0.5 else 1.0
    flip_y = -1.0 if "rotation" in levers and rng.random() < 0.2 else 1.0
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    linear = zoom * turn @ np.diag([flip_x, flip_y])
    matrix = np.hstack([linear, (np.array([size / 2, size / 2]) - linear @ np.asarray(centre))[:, None]])

    def warp(values: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.warpAffine(values, matrix, (size, size), flags=interpolation, borderValue=0)

    plane = np.clip(warp(plane, cv2.INTER_LINEAR), 0.0, 1.0)
    content = warp(content, cv2.INTER_NEAREST).astype(bool)

    strong = "appearance" in levers
    plane = plane ** (rng.uniform(0.6, 1.7) if strong else rng.uniform(0.8, 1.25))
    contrast, exposure = (rng.uniform(0.7, 1.3), rng.uniform(-0.1, 0.1)) if strong else (
        rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08))
    plane = np.clip((plane - 0.5) * contrast + 0.5 + exposure, 0.0, 1.0)
    if strong and rng.random() < 0.15:
        clahe = cv2.createCLAHE(clipLimit=rng.uniform(1.0, 3.0), tileGridSize=(8, 8))
        plane = clahe.apply(np.round(plane * 255).astype(np.uint8)).astype(np.float32) / 255.0
    if strong and rng.random() < 0.08:
        plane = np.where(content, 1.0 - plane, plane)
    plane = plane.astype(np.float32) * content  # outside the radiograph stays black, as the letterbox makes it
    if "overlays" in levers and rng.random() < 0.5:
        for kind in rng.choice(overlays.KINDS, size=rng.integers(1, 5)):
            overlays.draw(plane, rng, str(kind), "training")
    if strong and rng.random() < 0.3:
        small = int(rng.uniform(128, 256))
        plane = cv2.resize(cv2.resize(plane, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                           interpolation=cv2.INTER_LINEAR)
    if strong and rng.random() < 0.2:
        plane = cv2.GaussianBlur(plane, (0, 0), rng.uniform(0.3, 1.2))
    if strong and rng.random() < 0.3:
        plane = plane + rng.normal(0.0, rng.uniform(0.005, 0.03), plane.shape).astype(np.float32)
    if strong and rng.random() < 0.3:
        encoded = cv2.imencode(".jpg", np.round(np.clip(plane, 0, 1) * 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(30, 90))])[1]
        plane = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    image = np.clip(plane, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    if mask is None:
        return image
    return image, warp(np.ascontiguousarray(mask, dtype=np.uint8), cv2.INTER_NEAREST)


AUGMENTATIONS = {"anatomy": augment, "robust": augment_robust}
"""``--augmentation`` of the training command: the original anatomy-preserving recipe or the robust one."""


class RadiographBatches(keras.utils.PyDataset):
    """Batches of preprocessed radiographs (uint8 in memory), augmented on the fly when training.

    Plain: ``(images, labels)``. With ``boxes`` (from ``input_boxes``), for a model with the two outputs
    of ``network.with_evidence_map``: ``(images, (labels, cell_targets), (class_weights, has_target))``,
    the boxes moved with the image by the augmentation and turned into ``cell_targets`` on the
    ``cells`` x ``cells`` evidence map; ``class_weight`` then becomes per-sample weights (Keras takes
    ``class_weight`` for single-output models only).
    """

    def __init__(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        training: bool,
        seed: int = 0,
        boxes: list[tuple[tuple[localisation.Box, ...], float]] | None = None,
        cells: int = 0,
        class_weight: dict[int, float] | None = None,
        augmentation: str = "anatomy",
        levers: tuple[str, ...] = ROBUST_LEVERS,
        canvas_share: float = CANVAS_SHARE,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs, self.labels = inputs, labels.astype(np.float32)
        self.batch_size, self.training = batch_size, training
        self.boxes, self.cells = boxes, cells
        self.class_weight = class_weight or {0: 1.0, 1: 1.0}
        self.augmentation, self.levers, self.canvas_share = augmentation, tuple(levers), canvas_share
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(inputs))
        if training:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return int(np.ceil(len(self.inputs) / self.batch_size))

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.inputs[rows].astype(np.float32) / 255.0
        if self.boxes is not None:
            return self._with_targets(images, rows)
        if self.training:
            images = np.stack([self._augment(image, int(label))
                               for image, label in zip(images, self.labels[rows], strict=True)])
        return images, self.labels[rows]

    def _augment(self, image: np.ndarray, label: int, mask: np.ndarray | None = None):
        if self.augmentation == "robust":
            return augment_robust(image, self.rng, mask, label, self.levers, self.canvas_share)
        return augment(image, self.rng, mask)

    def _with_targets(self, images: np.ndarray, rows: np.ndarray):
        size = images.shape[1]
        targets = np.zeros((len(rows), self.cells, self.cells, 1), dtype=np.float32)
        for i, row in enumerate(rows):
            boxes, tolerance = self.boxes[row]
            mask = localisation.near_boxes_mask(boxes, (size, size), tolerance).astype(np.uint8)
            if self.training:
                images[i], mask = self._augment(images[i], int(self.labels[row]), mask)
            targets[i, ..., 0] = cell_targets(mask, self.cells)
        labels = self.labels[rows]
        weights = np.array([self.class_weight[int(label)] for label in labels], dtype=np.float32)
        has_target = targets.reshape(len(rows), -1).max(axis=1)
        return images, (labels, targets), (weights, has_target)

    def on_epoch_end(self) -> None:
        if self.training:
            self.rng.shuffle(self.order)


"""Pack FracAtlas' training and validation images into one tar small enough for a GPU machine's transfer limit.

    python tools/pack_for_gpu.py --data ../shared/datasets/fracatlas --out runs/gpu/fracatlas.tar --quality 82

On the GPU machine, ``tar xf fracatlas.tar -C runs/gpu`` gives a folder that ``python -m fracture_model.train
--data runs/gpu/fracatlas`` reads like the full copy (``tools/gpu_lever_runs.sh`` does this). The validation
images are copied byte for byte, so the epoch choice, calibration and threshold see exactly the images they
would here; the training images are re-encoded as JPEG at ``--quality`` (82 made the tar, the model to start
from and the wheels fit the 64 MiB this workplace sends; mean absolute change about 0.3 grey levels of 255,
less than the recipe's own JPEG augmentation). The index files are copied unchanged, so the data
fingerprint and the split recorded in the model card are those of the full copy. Test images are left out.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

from PIL import Image

from fracture_model import data
from fracture_model.localisation import ANNOTATIONS_FILE

INDEX_FILES = (*data.INDEX_FILES, "duplicates.csv", "README.md", ANNOTATIONS_FILE)
"""Copied unchanged: the fingerprint's files (so the card's fingerprint is the full copy's), the rest of the index
and the fracture boxes."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/pack_for_gpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--out", type=Path, required=True, help="the tar to write")
    parser.add_argument("--quality", type=int, default=82, help="JPEG quality of the re-encoded training images")
    parser.add_argument("--seed", type=int, default=20261127, help="the training command's --seed (it sets the split)")
    args = parser.parse_args(argv)

    frame = data.load_index(args.data)
    frame["split"] = data.assign_splits(frame, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sizes = {"train": 0, "validation": 0}
    with tarfile.open(args.out, "w") as tar:
        for name in INDEX_FILES:
            tar.add(args.data / name, arcname=f"fracatlas/{name}")
        for split, path in zip(frame["split"], frame["path"], strict=True):
            if split not in sizes:
                continue
            source = args.data / "images" / path
            if split == "validation":
                payload = source.read_bytes()
            else:
                buffer = io.BytesIO()
                Image.open(source).save(buffer, "JPEG", quality=args.quality, optimize=True)
                payload = buffer.getvalue()
            info = tarfile.TarInfo(f"fracatlas/images/{path}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            sizes[split] += len(payload)
    print(f"wrote {args.out}: training images {sizes['train'] / 1e6:.1f} MB (JPEG quality {args.quality}), "
          f"validation images {sizes['validation'] / 1e6:.1f} MB (unchanged), "
          f"{args.out.stat().st_size / 2**20:.1f} MiB in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Score radiographs from the command line with the shipped model and its operating threshold.

    python -m fracture_model.predict PATH [PATH ...] > predictions.csv

PATH is a PNG, JPEG or DICOM file, or a folder (searched recursively). Writes one CSV row per image
to standard output, header ``path,probability_fractured,decision``. A file that cannot be read gets one
sentence on standard error; the other files are still scored, and the exit code is 1 at the end.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from fracture_model.model_card import DEFAULT_MODEL_DIR


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files named on the command line, and every file under the folders named (sorted, hidden ones skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    yield child
        else:
            yield path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.predict", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model and model_card.json")
    args = parser.parse_args(argv)

    # Imported here so that --help answers at once, without loading TensorFlow.
    from fracture_model.imaging import InputError, read_radiograph
    from fracture_model.predictor import Predictor

    predictor = Predictor.load(args.model_dir)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "probability_fractured", "decision"])
    failures = 0
    for path in iter_files(args.paths):
        try:
            radiograph = read_radiograph(path.read_bytes())
        except (InputError, OSError) as error:
            failures += 1
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            print(f"{path}: {reason}", file=sys.stderr)
            continue
        prediction = predictor.predict(radiograph.pixels)
        writer.writerow([str(path), f"{prediction.probability_fractured:.6f}", prediction.decision])
        sys.stdout.flush()
    if failures:
        print(f"{failures} file(s) could not be scored", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

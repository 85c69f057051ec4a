"""Score radiographs from the command line with the shipped model and its operating threshold.

    python -m fracture_model.predict PATH [PATH ...] > predictions.csv

PATH is a PNG, JPEG or DICOM file, or a folder (searched recursively). Writes one CSV row per image
to standard output, header ``path,probability_fractured,decision``. A file that cannot be read gets one
sentence on standard error; the other files are still scored, and the exit code is 1 at the end.

An image that does not look like a radiograph (a colour photograph) is, as in the app, not scored
unless asked for: it gets a sentence on standard error saying how sure that judgement is, and with
``--score-photographs`` it is scored anyway (the sentence is still written).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
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
    parser.add_argument(
        "--score-photographs", action="store_true",
        help="also score images that do not look like radiographs (colour photographs); they are still reported",
    )
    args = parser.parse_args(argv)

    # Imported here so that --help answers at once, without loading TensorFlow.
    from fracture_model.imaging import InputError, looks_like_radiograph, read_radiograph

    with _native_stderr_silenced():
        from fracture_model.predictor import Predictor

    predictor = Predictor.load(args.model_dir)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "probability_fractured", "decision"])
    files = failures = 0
    for path in iter_files(args.paths):
        files += 1
        try:
            radiograph = read_radiograph(path.read_bytes())
        except (InputError, OSError) as error:
            failures += 1
            print(f"{path}: {_sentence(error)}", file=sys.stderr)
            continue
        plausible, reason = looks_like_radiograph(radiograph)
        if not plausible:
            print(f"{path}: {reason}", file=sys.stderr)
            if not args.score_photographs:
                failures += 1
                continue
        prediction = predictor.predict(radiograph.pixels)
        writer.writerow([str(path), f"{prediction.probability_fractured:.6f}", prediction.decision])
        sys.stdout.flush()
    if failures:
        print(f"{failures} of {files} file(s) were not scored.", file=sys.stderr)
    return 1 if failures else 0


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to file descriptor 2 (TensorFlow's start-up notices), so that
    standard error holds only the sentences about the files. Python exceptions still show: they
    are printed after the descriptor is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _sentence(error: Exception) -> str:
    """One sentence for the user: the `InputError` message, or what the operating system said."""
    if isinstance(error, OSError):
        why = (error.strerror or type(error).__name__).rstrip(".")
        return f"The file could not be opened ({why[:1].lower() + why[1:]})."
    return str(error)


if __name__ == "__main__":
    raise SystemExit(main())

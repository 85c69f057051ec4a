"""Score radiographs from the command line with the shipped model and its operating threshold.

    python -m fracture_model.predict PATH [PATH ...] > predictions.csv

PATH is a PNG, JPEG or DICOM file, or a folder (searched recursively). Writes one CSV row per image
to standard output, header ``path,probability_fractured,decision,in_distribution``: the first three
stay first (other tools read them); ``in_distribution`` is ``false`` when the image lies outside what
the model knows (``fracture_model.ood``: too far from the training data, or featureless; read the
probability with extra care), ``true`` otherwise, and empty for a model without the distance check
(``false`` still for a featureless image). A file that cannot be read gets one
sentence on standard error; the other files are still scored, and the exit code is 1 at the end.

An image that does not look like a radiograph (a colour photograph) is, as in the app, not scored
unless asked for: it gets a sentence on standard error saying how sure that judgement is, and with
``--score-photographs`` it is scored anyway (the sentence is still written).

Files are decoded and scored ``--batch-size`` at a time (one forward pass per batch). With more than a
few files and standard error on a terminal, a progress line ("Scored 48 of 100 file(s)") is kept up to
date there; ``--progress always`` writes it as one line per batch to any standard error, ``never`` hides it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from fracture_model import native_stderr
from fracture_model.model_card import DEFAULT_MODEL_DIR

FEW_FILES = 8
"""Progress is shown (``--progress auto``) for more files than this."""


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
    parser.add_argument("--batch-size", type=int, default=16, help="files decoded and scored together")
    parser.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help=f"progress on standard error; auto: on a terminal, for more than {FEW_FILES} files")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    # Imported here so that --help answers at once, without loading TensorFlow.
    from fracture_model.imaging import InputError, looks_like_radiograph, read_radiograph

    with native_stderr.silenced():
        from fracture_model.predictor import Predictor

    predictor = Predictor.load(args.model_dir)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "probability_fractured", "decision", "in_distribution"])
    paths = list(iter_files(args.paths))
    files, failures = len(paths), 0
    progress = _Progress(files, args.progress)
    for start in range(0, files, args.batch_size):
        decoded = []
        for path in paths[start:start + args.batch_size]:
            try:
                radiograph = read_radiograph(path.read_bytes())
            except (InputError, OSError) as error:
                failures += 1
                progress.say(f"{path}: {_sentence(error)}")
                continue
            plausible, reason = looks_like_radiograph(radiograph)
            if not plausible:
                progress.say(f"{path}: {reason}")
                if not args.score_photographs:
                    failures += 1
                    continue
            decoded.append((path, radiograph.pixels))
        predictions = predictor.predict_many([pixels for _, pixels in decoded], batch_size=args.batch_size)
        for (path, _), prediction in zip(decoded, predictions, strict=True):
            writer.writerow([str(path), f"{prediction.probability_fractured:.6f}", prediction.decision,
                             "" if prediction.in_distribution is None else str(prediction.in_distribution).lower()])
        sys.stdout.flush()
        progress.update(min(start + args.batch_size, files))
    progress.close()
    if failures:
        print(f"{failures} of {files} file(s) were not scored.", file=sys.stderr)
    return 1 if failures else 0


class _Progress:
    """'Scored N of M file(s)' on standard error: kept on one line on a terminal, one line per batch otherwise.

    Sentences about files (``say``) go through here so that they never share a line with the progress.
    """

    def __init__(self, total: int, mode: str) -> None:
        self.total = total
        self.terminal = sys.stderr.isatty()
        self.shown = mode == "always" or (mode == "auto" and self.terminal and total > FEW_FILES)
        self._pending_line = False

    def say(self, sentence: str) -> None:
        self._end_line()
        print(sentence, file=sys.stderr)

    def update(self, done: int) -> None:
        if not self.shown:
            return
        text = f"Scored {done} of {self.total} file(s)"
        if self.terminal:
            sys.stderr.write("\r" + text)
            self._pending_line = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._pending_line:
            sys.stderr.write("\n")
            self._pending_line = False


def _sentence(error: Exception) -> str:
    """One sentence for the user: the `InputError` message, or what the operating system said."""
    if isinstance(error, OSError):
        why = (error.strerror or type(error).__name__).rstrip(".")
        return f"The file could not be opened ({why[:1].lower() + why[1:]})."
    return str(error)


if __name__ == "__main__":
    raise SystemExit(main())

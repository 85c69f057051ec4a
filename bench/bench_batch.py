"""Images per second of the three ways to score many radiographs, on the same files, in one run.

    python bench/bench_batch.py [--images ../shared/datasets/fracatlas/images] [--count 512] [--batch-size 16]

Runs, one after another, each as a user would (a fresh process): ``python -m fracture_model.predict``,
``python -m fracture_model.batch --engine local`` and ``python -m fracture_model.batch --engine ray``
(a local Ray started by the command) on the first ``--count`` images of ``--images`` (sorted paths;
without that folder, generated radiographs). For each it prints the wall time of the whole command
(start-up, model load and Ray start included), images per second over that time, and the steady
rate once the first result is out (from the time stamps of the predict command's rows, or of the
batch job's Parquet parts). It also prints the largest probability difference between the three, the
machine's core count and its load average before and after, since other work on the machine slows
every figure. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def images_to_score(folder: Path, count: int, scratch: Path) -> list[str]:
    if folder.is_dir():
        found = sorted(str(path.resolve()) for path in folder.rglob("*") if path.is_file())[:count]
        if len(found) == count:
            return found
    from tests.bad_inputs import bone_like

    generated = scratch / "generated"
    generated.mkdir()
    for index in range(count):
        Image.fromarray(bone_like(448, 384, seed=index)).save(generated / f"{index:05d}.png")
    return sorted(str(path) for path in generated.iterdir())


def steady_rate(times: list[float]) -> float:
    """Images per second between the first and the last of a list of (one per image) completion times."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")


def run_predict(paths: list[str]) -> tuple[float, list[float], dict[str, float]]:
    start = time.perf_counter()
    job = subprocess.Popen([sys.executable, "-m", "fracture_model.predict", *paths], cwd=REPO, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stamps, probabilities = [], {}
    for line in job.stdout:
        if line.startswith("path,"):
            continue
        path, probability, _decision = line.rstrip("\n").rsplit(",", 2)
        stamps.append(time.perf_counter())
        probabilities[path] = float(probability)
    job.wait()
    return time.perf_counter() - start, stamps, probabilities


def run_batch(listing: Path, out: Path, engine: str, batch_size: int) -> tuple[float, float, dict[str, float], str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "fracture_model.batch", f"@{listing}", "--out", str(out),
                             "--engine", engine, "--batch-size", str(batch_size)],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = next((line for line in result.stderr.splitlines() if line.startswith("scored ")), result.stderr[-500:])
    parts = sorted(out.glob("*.parquet"), key=lambda part: part.stat().st_mtime)
    # A part's rows all finish at its time stamp: the steady phase runs from the first part to the last.
    rows_after_first = sum(len(pd.read_parquet(part)) for part in parts[1:])
    seconds = parts[-1].stat().st_mtime - parts[0].stat().st_mtime if parts else 0.0
    rate = rows_after_first / seconds if seconds > 0 else float("nan")
    rows = pd.read_parquet(out)
    return wall, rate, dict(zip(rows["path"], rows["probability_fractured"], strict=True)), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas" / "images")
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; load average before {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        paths = images_to_score(args.images, args.count, scratch)
        listing = scratch / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        print(f"{len(paths)} images from {Path(paths[0]).parent.parent}; batch size {args.batch_size}\n")

        results = {}
        wall, stamps, probabilities = run_predict(paths)
        results["predict command"] = (wall, steady_rate(stamps), probabilities, f"{len(probabilities)} rows")
        for engine in ("local", "ray"):
            wall, rate, probabilities, summary = run_batch(listing, scratch / engine, engine, args.batch_size)
            results[f"batch --engine {engine}"] = (wall, rate, probabilities, summary)

        print(f"{'command':<22} {'wall s':>7} {'images/s':>9} {'steady images/s':>16}   its own summary")
        for name, (wall, rate, _probabilities, summary) in results.items():
            print(f"{name:<22} {wall:7.1f} {len(paths) / wall:9.1f} {rate:16.1f}   {summary}")
        reference = results["predict command"][2]
        for name, (_wall, _rate, probabilities, _summary) in results.items():
            common = sorted(set(reference) & set(probabilities))
            difference = max(abs(reference[path] - probabilities[path]) for path in common) if common else np.nan
            print(f"{name:<22} scored {len(common)} of the predict command's {len(reference)}; "
                  f"largest probability difference {difference:.1e}")
    print(f"\nload average after {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

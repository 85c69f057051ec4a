"""Score a whole archive of radiographs on Ray Data (or in one process), resumably, into Parquet.

    python -m fracture_model.batch SOURCE [SOURCE ...] --out DIR [--engine ray|local] [--address ADDRESS]

SOURCE is a folder (searched recursively, hidden files skipped), a file, or ``@paths.txt`` (one path
per line). PNG, JPEG and DICOM are recognised by content, with or without an extension. DIR receives
Parquet files only, with one row per image: ``path`` (absolute), ``probability_fractured``,
``decision``, ``error`` (the predict command's sentence, or null), ``model_version`` and
``in_distribution`` (false for a featureless image, else null where the model has no distance check);
``pandas.read_parquet(DIR)`` reads the whole result.

The job is resumable: each finished batch is written as its own Parquet part (atomically: written
under a hidden name, then renamed), and a new run skips every path DIR already holds, so a killed run
loses at most the batches in flight. A file that could not be read keeps its error row; to retry it,
delete the parts (or the whole DIR).

With ``--engine ray`` (the default) Ray Data reads and decodes in CPU tasks (`imaging.read_radiograph`,
then `preprocess.preprocess`, the one preprocessing) and scores in a pool of actors each holding the
compiled model (`Predictor.load`), one per GPU where the cluster has GPUs. Without ``--address`` a local
Ray starts by itself; ``--address auto`` or ``HOST:6379`` joins a cluster started with ``ray start``.
``--engine local`` runs the same steps in this process, without Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet as pq

from fracture_model import model_card
from fracture_model.model_card import DEFAULT_MODEL_DIR, read_card
from fracture_model.predict import _sentence, iter_files

DEFAULT_BATCH_SIZE = 16  # as Predictor.predict_many; one Parquet part per batch
MODEL_ACTOR_MEMORY = 2 * 2**30
"""Memory a scoring actor asks Ray for: TensorFlow with the model peaks near 1.7 GiB on this CPU."""

SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("probability_fractured", pa.float64()),
    pa.field("decision", pa.string()),
    pa.field("error", pa.string()),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("in_distribution", pa.bool_()),
])
"""The columns of every Parquet part; ``error`` is null for a scored image, the other results null for a failed one."""

_PART_PREFIX = "part-"
_TEMPORARY_PREFIX = ".writing-"
_LOCK_FILE = ".lock"


class BatchError(Exception):
    """A problem with the job's arguments or output folder, worded as one sentence for the user."""


# ----------------------------------------------------------------------------------------------
# Sources and the output folder
# ----------------------------------------------------------------------------------------------


def list_sources(sources: Iterable[str]) -> list[str]:
    """Absolute paths of every file named by the SOURCE arguments, each once, in the order given.

    A folder contributes every file below it (sorted, hidden ones skipped, as in the predict command);
    ``@list.txt`` contributes each non-empty line of that file, read the same way (relative lines are
    relative to the current folder). A path that does not exist is kept: it becomes an error row.
    """
    named: list[Path] = []
    for source in sources:
        if source.startswith("@"):
            listing = Path(source[1:])
            try:
                lines = listing.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                why = _sentence(error) if isinstance(error, OSError) else "The file is not UTF-8 text."
                raise BatchError(f"The list of paths {listing} cannot be read: {why}") from None
            named += [Path(line.strip()) for line in lines if line.strip()]
        else:
            named.append(Path(source))
    return list(dict.fromkeys(os.path.abspath(path) for path in iter_files(named)))


def model_version(model_dir: Path | str) -> str:
    """The version `Predictor.model_version` will report (``model_card.model_sha256``), without TensorFlow."""
    return model_card.model_sha256(model_dir)[:12]


def _is_bookkeeping(name: str) -> bool:
    return name.startswith(("_", "."))


def read_results(out_dir: Path, columns: list[str] | None = None) -> pa.Table:
    """The rows (``columns``, default all) the Parquet parts in ``out_dir`` hold; an empty table when none."""
    parts = [str(part) for part in sorted(out_dir.glob(f"{_PART_PREFIX}*.parquet"))]
    if not parts:
        return SCHEMA.empty_table().select(columns or SCHEMA.names)
    return pyarrow.dataset.dataset(parts, schema=SCHEMA, format="parquet").to_table(columns=columns)


def prepare_output(out_dir: Path) -> None:
    """Create ``out_dir``, refuse one holding anything but our Parquet parts, and remove our unfinished parts."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchError(f"{out_dir} is a file; --out must name a folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    strangers = sorted(
        entry.name for entry in out_dir.iterdir()
        if not _is_bookkeeping(entry.name)
        and not (entry.name.startswith(_PART_PREFIX) and entry.name.endswith(".parquet"))
    )
    if strangers:
        raise BatchError(
            f"{out_dir} holds files this job did not write (for example {strangers[0]}); "
            "choose an empty or new folder for --out, so that it holds nothing but the results."
        )
    for unfinished in out_dir.glob(f"{_TEMPORARY_PREFIX}*"):
        unfinished.unlink()


@contextlib.contextmanager
def _only_job_writing(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` while writing into it: two jobs at once would duplicate rows."""
    with open(out_dir / _LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"Another job is writing into {out_dir}; wait for it to finish.") from None
        yield


class PartWriter:
    """Writes each finished batch as its own Parquet part, atomically (hidden name first, then a rename)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.parts = 0

    def write(self, table: pa.Table) -> None:
        name = f"{_PART_PREFIX}{self.run}-{self.parts:06d}.parquet"
        temporary = self.out_dir / f"{_TEMPORARY_PREFIX}{name}"
        pq.write_table(table.select(SCHEMA.names).cast(SCHEMA), temporary)
        os.replace(temporary, self.out_dir / name)
        self.parts += 1


# ----------------------------------------------------------------------------------------------
# The two steps: decode + preprocess (CPU), score (the model)
# ----------------------------------------------------------------------------------------------


def decode_batch(batch: dict[str, np.ndarray], *, image_size: int,
                 score_photographs: bool = False) -> dict[str, np.ndarray]:
    """Paths -> network inputs: read each file, `read_radiograph`, refuse photographs as the predict command
    does, and `preprocess`. An unreadable file gets a zero image and its sentence in ``error`` ("" when fine)."""
    from fracture_model.imaging import InputError, looks_like_radiograph, read_radiograph
    from fracture_model.preprocess import preprocess

    paths = [str(path) for path in batch["path"]]
    images = np.zeros((len(paths), image_size, image_size, 1), np.float32)
    errors = [""] * len(paths)
    for index, path in enumerate(paths):
        try:
            radiograph = read_radiograph(Path(path).read_bytes())
        except (InputError, OSError) as error:
            errors[index] = _sentence(error)
            continue
        except Exception as error:  # a bug: fail loudly, but say which file
            raise RuntimeError(f"unexpected error while reading {path}") from error
        plausible, reason = looks_like_radiograph(radiograph)
        if not plausible and not score_photographs:
            errors[index] = reason
            continue
        images[index] = preprocess(radiograph.pixels, image_size)
    return {"path": np.array(paths, dtype=str), "image": images, "error": np.array(errors, dtype=str)}


class Scorer:
    """Holds the compiled model; network inputs -> result rows. Ray Data keeps one per actor."""

    def __init__(self, model_dir: str) -> None:
        from fracture_model.predictor import Predictor

        self.predictor = Predictor.load(model_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        errors = [str(error) for error in batch["error"]]
        readable = np.array([not error for error in errors], dtype=bool)
        predictions = iter(self.predictor.predictions(batch["image"][readable]) if readable.any() else [])
        rows = {name: [] for name in SCHEMA.names}
        for path, error in zip(batch["path"], errors, strict=True):
            prediction = None if error else next(predictions)
            rows["path"].append(str(path))
            rows["probability_fractured"].append(None if prediction is None else prediction.probability_fractured)
            rows["decision"].append(None if prediction is None else prediction.decision)
            rows["error"].append(error or None)
            rows["model_version"].append(self.predictor.model_version)
            rows["in_distribution"].append(None if prediction is None else prediction.in_distribution)
        return pa.table(rows, schema=SCHEMA)


# ----------------------------------------------------------------------------------------------
# Engines: each yields result tables as batches finish
# ----------------------------------------------------------------------------------------------


def run_local(paths: list[str], *, model_dir: Path, image_size: int, batch_size: int,
              score_photographs: bool) -> Iterator[pa.Table]:
    """The same two steps, one batch after another, in this process."""
    scorer = Scorer(str(model_dir))
    for start in range(0, len(paths), batch_size):
        chunk = {"path": np.array(paths[start:start + batch_size], dtype=str)}
        yield scorer(decode_batch(chunk, image_size=image_size, score_photographs=score_photographs))


def run_ray(paths: list[str], *, model_dir: Path, image_size: int, batch_size: int, score_photographs: bool,
            actors: int | None = None) -> Iterator[pa.Table]:
    """Ray Data: paths -> decode + preprocess in CPU tasks -> score in an actor pool -> result tables,
    streamed back to this process as they finish. Needs ``ray.init`` to have been called."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # this command prints its own progress
    context.print_on_execution_start = False
    gpus = int(ray.cluster_resources().get("GPU", 0))
    nodes = sum(1 for node in ray.nodes() if node["Alive"]) or 1
    cpus_per_node = max(1, int(ray.cluster_resources().get("CPU", 1)) // nodes)
    # Declaring the actor's memory also keeps Ray Data from fusing decoding into the actor (it fuses
    # steps with equal resource requests), so decoding stays in CPU tasks spread over the cluster.
    if gpus:  # one actor per GPU; decoding keeps the CPUs
        scoring = {"num_gpus": 1, "num_cpus": 1, "memory": MODEL_ACTOR_MEMORY, "size": actors or gpus}
    else:  # one actor per node, with half its CPUs for the model; the other half decodes
        scoring = {"num_cpus": max(1, cpus_per_node // 2), "memory": MODEL_ACTOR_MEMORY, "size": actors or nodes}
    pool = ray.data.ActorPoolStrategy(size=scoring.pop("size"))
    table = pa.table({"path": pa.array(paths, pa.string())})
    blocks = [table.slice(start, batch_size) for start in range(0, len(paths), batch_size)]
    dataset = (
        ray.data.from_arrow(blocks)
        .map_batches(decode_batch, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                     fn_kwargs={"image_size": image_size, "score_photographs": score_photographs})
        .map_batches(Scorer, batch_size=batch_size, batch_format="numpy",
                     fn_constructor_kwargs={"model_dir": str(model_dir)}, compute=pool, **scoring)
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")


@contextlib.contextmanager
def ray_cluster(address: str | None) -> Iterator[None]:
    """Join the cluster at ``address``, or start a local Ray (and stop it afterwards); reuse one already
    initialised in this process (tests). On a cluster, Ray ships this package to every node; the
    libraries, the model folder and the images must be there at the same paths."""
    import ray

    if ray.is_initialized():
        yield
        return
    runtime_env: dict = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    if address:
        runtime_env["py_modules"] = [str(Path(__file__).resolve().parent)]
    try:
        ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING", runtime_env=runtime_env)
    except Exception as error:  # Ray raises several types here (ConnectionError, RuntimeError, authentication)
        if not address:
            raise
        raise BatchError(
            f"Could not join the Ray cluster at {address} ({type(error).__name__}); check that 'ray start' runs "
            "there and, with Ray's token authentication, use --address auto on a cluster node or give this "
            "machine the cluster's token."
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------


@dataclass
class Summary:
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        done = self.scored + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"scored {self.scored}, failed {self.failed}, skipped {self.skipped} (already in the output), "
                f"{self.seconds:.1f} s, {self.images_per_second:.1f} images/s")


def score_archive(sources: Iterable[str], out_dir: Path | str, *, engine: str = "ray", address: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, model_dir: Path | str = DEFAULT_MODEL_DIR,
                  score_photographs: bool = False, actors: int | None = None,
                  progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
                  progress_every_s: float = 10.0) -> Summary:
    """Score every file the sources name that ``out_dir`` does not hold yet; write one Parquet part per batch."""
    if batch_size < 1:
        raise BatchError("--batch-size must be at least 1.")
    if engine not in ("ray", "local"):
        raise BatchError(f"--engine must be 'ray' or 'local', not {engine!r}.")
    out_dir, model_dir = Path(out_dir), Path(model_dir).resolve()
    started = time.perf_counter()
    version, image_size = model_version(model_dir), int(read_card(model_dir)["input_size"])
    paths = list_sources(sources)
    prepare_output(out_dir)
    with _only_job_writing(out_dir):
        done = read_results(out_dir, columns=["path", "model_version"])
        other_versions = sorted(set(done.column("model_version").to_pylist()) - {version})
        if other_versions:
            raise BatchError(
                f"{out_dir} holds results of model {other_versions[0]}, not of this model ({version}); "
                "choose a new folder for --out so that one result table holds one model's scores."
            )
        already = set(done.column("path").to_pylist())
        todo = [path for path in paths if path not in already]
        summary = Summary(skipped=len(paths) - len(todo))
        progress(f"{len(paths)} file(s): {summary.skipped} already in {out_dir}, {len(todo)} to score "
                 f"with model {version} on the {engine} engine")
        if todo:
            options = {"model_dir": model_dir, "image_size": image_size, "batch_size": batch_size,
                       "score_photographs": score_photographs}
            writer, last_report = PartWriter(out_dir), time.perf_counter()
            with ray_cluster(address) if engine == "ray" else contextlib.nullcontext():
                tables = run_ray(todo, actors=actors, **options) if engine == "ray" else run_local(todo, **options)
                for table in tables:
                    writer.write(table)
                    failed = table.num_rows - table.column("error").null_count
                    summary.failed += failed
                    summary.scored += table.num_rows - failed
                    now = time.perf_counter()
                    if now - last_report >= progress_every_s:
                        last_report = now
                        progress(_progress_line(summary, len(todo), now - started))
        summary.seconds = time.perf_counter() - started
    progress(summary.line())
    return summary


def _progress_line(summary: Summary, total: int, seconds: float) -> str:
    done = summary.scored + summary.failed
    rate = done / seconds if seconds > 0 else 0.0
    left = f", about {math.ceil((total - done) / rate)} s left" if rate > 0 else ""
    return f"{done} of {total} done ({summary.failed} failed), {rate:.1f} images/s{left}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.batch", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="folders, files, or @list.txt (one path a line)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the Parquet results")
    parser.add_argument("--engine", choices=("ray", "local"), default="ray", help="Ray Data, or one local process")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto' or HOST:PORT); without it a local Ray starts")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="images per model call and per Parquet part")
    parser.add_argument("--actors", type=int, default=None,
                        help="model actors (Ray); default one per GPU, or one per node without GPUs")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model and model_card.json")
    parser.add_argument("--score-photographs", action="store_true",
                        help="also score images that do not look like radiographs (colour photographs)")
    args = parser.parse_args(argv)
    if args.engine == "local" and (args.address or args.actors):
        parser.error("--address and --actors apply to --engine ray only")
    try:
        summary = score_archive(args.sources, args.out, engine=args.engine, address=args.address,
                                batch_size=args.batch_size, model_dir=args.model_dir,
                                score_photographs=args.score_photographs, actors=args.actors)
    except BatchError as error:
        print(error, file=sys.stderr)
        return 2
    if summary.failed:
        print(f"{summary.failed} file(s) were not scored; their rows in {args.out} say why.", file=sys.stderr)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

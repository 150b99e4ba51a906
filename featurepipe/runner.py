"""Batch execution: chunks of items to worker processes (joblib loky, or a Dask cluster), results into the
feature store, progress bars, and the per-file error ledger. The one place that knows about parallelism."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from .core import timed
from .core.progress import shown_by
from .datasets import Dataset, ImageError, decode
from .datasets.decode import MAX_PIXELS
from .datasets.sources import content_stamp
from .errors import ExtractError
from .fingerprint import to_json
from .store import FAILED, OK, ExtractResult, FeatureStore, precision

if TYPE_CHECKING:  # the pipeline modules load scikit-learn; this module is imported before them on purpose
    from .pipeline import FeaturePipeline


_RESIZE_HINT = "put a `resize` step in front (preprocess: [{resize: {size: [H, W]}}])"


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"unreadable file: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def load_images(paths, pipeline: FeaturePipeline, on_error: str, max_pixels: int = MAX_PIXELS,
                unchecked: bool = False, listed=None):
    """Decode and preprocess each file (one at a time, so memory follows the preprocessed size); formats
    without a header size check only when ``unchecked``.

    With ``listed`` (per file, the content hash the listing recorded: ``--hash``) the bytes read are hashed,
    and a file whose bytes differ fails: no row is computed from content the data set's identity does not
    name. Returns (row indices that worked, their images, [path, reason] of those that did not, the hash of
    the bytes read per file -- None without ``listed`` or when unreadable).
    """
    rows, images, errors, hashes = [], [], [], []
    for i, path in enumerate(paths):
        hashes.append(None)
        try:
            with open(path, "rb") as f:
                data = f.read()
            if listed is not None:
                hashes[-1] = content_stamp(data)
                _check_unchanged(hashes[-1], listed[i])
            image = pipeline.prepare([decode(data, max_pixels, unchecked)])
            images.append(image[0])
            rows.append(i)
        except Exception as exc:  # noqa: BLE001 -- any per-file failure goes to the ledger
            if on_error == "fail":
                raise ExtractError(f"{path}: {_describe_error(exc)}") from exc
            errors.append([str(path), _describe_error(exc)])
    return rows, images, errors, hashes


def _check_unchanged(decoded: str, listed: str) -> None:
    if decoded != listed:
        raise ImageError("the file changed since the data set was listed (its content hash differs); "
                         "the next run reads it again")


def process_chunk(index: int, paths: list[str], pipeline: FeaturePipeline, on_error: str, max_pixels: int,
                  unchecked: bool = False, listed=None):
    """Features of one chunk: (index, features or None, status per item, [path, reason] failures, image size,
    and with ``listed`` the [hash of the bytes decoded, listed hash] of each item; see ``load_images``).

    When the batch call fails, items are retried one by one so a single bad image (say, smaller than
    a HOG block) fails alone.
    """
    with single_threaded_opencv():
        rows, images, errors, hashes = load_images(paths, pipeline, on_error, max_pixels, unchecked, listed)
        pairs = None if listed is None else [list(pair) for pair in zip(hashes, listed)]
        return (*_process_chunk(index, paths, pipeline, on_error, rows, images, errors), pairs)


_WATCHED: list = []


def watch_owner(owner: int) -> None:
    """Run in each local worker process as it starts (loky's initializer): exit within a second of
    ``owner``, the process running the extraction, dying (SIGKILL included), instead of waiting for tasks
    or computing chunks nobody will commit."""
    import threading

    if _WATCHED or os.getpid() == owner:
        return
    _WATCHED.append(owner)

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != owner:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="featurepipe-parent-watch").start()


@contextlib.contextmanager
def single_threaded_opencv():
    """OpenCV's own thread pool costs more than it gives on small images, and oversubscribes the cores
    when several workers run: parallelism is across chunks here, so OpenCV runs on one thread."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


# Errors that say the pipeline or the environment is broken, not one image: they stop the run instead of
# filling the ledger (scikit-learn's NotFittedError is an AttributeError).
_SYSTEMIC = (ImportError, MemoryError, AttributeError, TypeError, NameError)


def _process_chunk(index, paths, pipeline, on_error, rows, images, errors):
    status = np.full(len(paths), FAILED, np.int8)
    if not images:
        return index, None, status, errors, None
    try:
        block = pipeline.extractor.features(images)
    except _SYSTEMIC as exc:
        raise ExtractError(f"{type(exc).__name__}: {exc}") from exc
    except Exception:  # noqa: BLE001 -- isolate the culprit(s) one image at a time
        kept, parts = [], []
        for row, image in zip(rows, images):
            try:
                parts.append(pipeline.extractor.features([image]))
                kept.append(row)
            except Exception as exc:  # noqa: BLE001
                if on_error == "fail":
                    raise ExtractError(f"{paths[row]}: {_describe_error(exc)}") from exc
                errors.append([str(paths[row]), _describe_error(exc)])
        images = [images[rows.index(r)] for r in kept]
        if not kept:
            return index, None, status, errors, None
        _check_one_size(pipeline, images)
        rows, block = kept, np.concatenate(parts)
    shapes = _check_one_size(pipeline, images)
    features = np.zeros((len(paths), block.shape[1]), np.float32)
    features[rows] = block
    status[rows] = OK
    return index, features, status, errors, shapes.pop() if pipeline.size_dependent else None


def _check_one_size(pipeline, images) -> set:
    """The image sizes of a chunk; several are an error when the output length depends on the size."""
    shapes = {im.shape[:2] for im in images}
    if pipeline.size_dependent and len(shapes) > 1:
        raise ExtractError(f"{pipeline.extractor.name}: output length depends on image size and the images have "
                           f"several sizes, e.g. {sorted(shapes)[:2]}; {_RESIZE_HINT}")
    return shapes


@contextlib.contextmanager
def parallel_backend(backend: str, jobs: int, scheduler: str | None):
    """joblib's loky processes, or a Dask cluster at ``scheduler`` (needs the ``dask`` extra)."""
    import joblib

    if backend == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise ExtractError("backend 'dask' needs the dask extra: pip install 'featurepipe[dask]'") from None
        workers = joblib.cpu_count() if jobs < 0 else jobs
        with Client(scheduler) if scheduler else Client(processes=True, n_workers=workers, threads_per_worker=1) as c:
            with joblib.parallel_config(backend="dask", wait_for_workers_timeout=30):
                yield c
    else:
        with joblib.parallel_config(backend=backend, n_jobs=jobs, initializer=watch_owner, initargs=(os.getpid(),)):
            yield None


def _parallel(jobs: int):
    """The one ``Parallel`` configuration the runner uses, so warm-up and extraction share workers."""
    from joblib import Parallel

    return Parallel(n_jobs=jobs, return_as="generator_unordered", pre_dispatch="2*n_jobs")


def map_in_processes(jobs: int):
    """A ``map_tasks(function, tasks)`` that runs ``function(*task)`` for each task on ``jobs`` local loky
    processes (the extraction's own, reused when they are up) and returns the results in order; in this
    process when ``jobs`` is 1 or there is one task. ``function`` must be importable by the workers."""
    def map_tasks(function, tasks: list[tuple]) -> list:
        if jobs == 1 or len(tasks) < 2:
            return [function(*task) for task in tasks]
        from joblib import Parallel, delayed

        with parallel_backend("loky", jobs, None):
            return Parallel(n_jobs=jobs)(delayed(function)(*task) for task in tasks)

    return map_tasks


def warm_up_workers(jobs: int, backend: str) -> None:
    """Start the local worker processes and their imports in the background, so that they load while the
    main process builds the pipeline; the extraction's ``Parallel`` call then reuses them."""
    if backend != "loky" or jobs == 1:
        return
    import importlib
    import threading

    from joblib import delayed

    def start():
        try:
            with parallel_backend(backend, jobs, None):
                list(_parallel(jobs)(delayed(importlib.import_module)("featurepipe.pipeline") for _ in range(jobs)))
        except BaseException:  # noqa: BLE001 -- an interrupted run stops the pool; the run itself reports it
            pass

    threading.Thread(target=start, daemon=True, name="featurepipe-warm-up").start()


def _chunk_paths(dataset: Dataset, chunk: int, rows: int) -> list[str]:
    return [str(dataset.path(i)) for i in range(chunk * rows, min(len(dataset), (chunk + 1) * rows))]


def _chunk_listed_hashes(dataset: Dataset, chunk: int, rows: int) -> list[str] | None:
    """The content hashes the listing recorded for a chunk's items (``--hash``), else None."""
    return list(dataset.stamps[chunk * rows:(chunk + 1) * rows]) if dataset.hashed else None


def fit_pipeline(pipeline: FeaturePipeline, dataset: Dataset, *, jobs: int = 1, on_error: str = "skip",
                 max_pixels: int = MAX_PIXELS, chunk_rows: int = 1024, progress: bool = True,
                 unchecked: bool = False) -> dict:
    """Fit a data-driven pipeline on the training split only (the whole set when it has no splits).

    Returns the seconds of each phase: ``load`` (decoding and preprocessing the training images), the
    extractor's own phases (``fit_timings_``: sampling, projection, vocabulary...) and ``fit`` in all."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from .pipeline import fit_timings

    train = dataset.subset("train") if dataset.splits is not None else dataset
    chunks = range(-(-len(train) // chunk_rows))
    tasks = (delayed(load_images)(_chunk_paths(train, c, chunk_rows), pipeline, on_error, max_pixels, unchecked)
             for c in chunks)
    images, labels, timings, first_failure = [], [], {}, None
    with timed(timings, "load"), tqdm(total=len(train), unit="img", desc="load for fit", disable=not progress) as bar, \
            parallel_backend("loky", jobs, None):
        for c, (rows, part, failed, _) in zip(chunks, Parallel(n_jobs=jobs, return_as="generator")(tasks)):
            images.extend(part)
            if train.labels is not None:
                labels.extend(train.labels[c * chunk_rows + r] for r in rows)
            first_failure = first_failure or (failed[0] if failed else None)
            bar.update(len(part) + len(failed))
    if not images:
        reason = f"; the first: {first_failure[0]}: {first_failure[1]}" if first_failure else ""
        raise ExtractError(f"none of the {len(train)} training images could be read to fit the pipeline{reason}")
    with timed(timings, "fit"), shown_by(tqdm if progress else None):
        pipeline.extractor.fit(images, labels or None)  # its sampling and vocabulary fit show their own bars
    return {**timings, **fit_timings(pipeline.extractor)}


def extract(dataset: Dataset, pipeline: FeaturePipeline, store: FeatureStore, *, chunk_rows: int = 1024,
            jobs: int = 1, backend: str = "loky", scheduler: str | None = None, on_error: str = "skip",
            max_pixels: int = MAX_PIXELS, progress: bool = True, parents=(), fit: dict | None = None,
            unchecked: bool = False, storage: str = precision.DEFAULT) -> ExtractResult:
    """Compute (or resume, or reuse) the features of every item of ``dataset`` into ``store``.

    The pipeline must be fitted already when it is data-driven (see ``fit_pipeline``); ``parents`` are the
    store entries it was made from (its fit) and ``fit`` the fit's phase timings, both kept with the entry.
    Chunks of a finished entry that fail their checks are recomputed. ``unchecked`` also decodes formats whose
    header gives no size (``run.allow_unchecked_formats``). ``storage`` is the precision the features are
    stored at (``pipeline.storage``; part of the key): features it cannot hold stop the run with an
    ``ExtractError`` naming the extractor and the setting. The entry's lock is held shared throughout
    (``store.writing``), so ``cache rm`` and ``gc`` leave it alone meanwhile.
    """
    from joblib import delayed
    from tqdm.auto import tqdm

    start = time.perf_counter()
    key = store.key("features", dataset=dataset.identity(), pipeline=pipeline.fingerprint(),
                    decoding={"max_pixels": max_pixels, **({"unchecked_formats": True} if unchecked else {})},
                    **precision.key_part(storage))
    meta = {"classes": dataset.classes, "root": str(dataset.root), "dataset_identity": dataset.identity(),
            "storage": storage, "pipeline_name": pipeline.extractor.name, "pipeline": to_json(pipeline.describe()),
            "parents": list(parents), "listing_problems": [list(p) for p in dataset.problems]}
    items = {"ids": list(dataset.ids), "labels": list(dataset.labels) if dataset.labels else None,
             "splits": list(dataset.splits) if dataset.splits else None}
    with store.writing(key):
        rows, pending = store.open_entry(key, len(dataset), chunk_rows, meta, items)
        damaged = store.damaged_chunks(key)
        if damaged:
            print(f"featurepipe: entry {key}: recomputing {len(damaged)} damaged chunk(s), e.g. chunk "
                  f"{next(iter(damaged))}: {next(iter(damaged.values()))}", file=sys.stderr)
            store.reset_chunks(key, damaged)
            pending = sorted(set(pending) | set(damaged))
        todo = sum(len(_chunk_paths(dataset, c, rows)) for c in pending)
        if pending:
            tasks = (delayed(process_chunk)(c, _chunk_paths(dataset, c, rows), pipeline, on_error, max_pixels,
                                            unchecked, _chunk_listed_hashes(dataset, c, rows)) for c in pending)
            bar = tqdm(total=len(dataset), initial=len(dataset) - todo, unit="img", desc="extract",
                       disable=not progress)
            with bar, parallel_backend(backend, jobs, scheduler):
                for index, features, status, errors, shape, hashes in _parallel(jobs)(tasks):
                    _check_same_size(store, key, index, features, shape)
                    try:
                        store.write_chunk(key, index, features, status, errors, hashes)
                    except precision.PrecisionError as e:
                        raise ExtractError(f"pipeline.storage: {storage} cannot hold the features of extractor "
                                           f"{pipeline.extractor.name} (chunk {index}): {e}; use float32, the "
                                           f"default") from None
                    bar.update(len(status))
        if pending or not store.is_complete(key):
            status = store.status(key)
            failed = int((status == FAILED).sum()) + len(dataset.problems)  # files that failed, paths not listed
            store.finish(key, {"n": len(dataset), "ok": int((status == OK).sum()), "failed": failed,
                               "seconds": time.perf_counter() - start, "computed": todo, "fit": fit or {}})
        summary = store.summary(key)
    if summary["failed"] and on_error == "fail":
        path, reason = store.ledger(key)[0]
        raise ExtractError(f"{path}: {reason}")
    return ExtractResult(key, len(dataset), summary["ok"], summary["failed"], store.path(key) / "errors.csv",
                         time.perf_counter() - start, todo)


def _check_same_size(store: FeatureStore, key: str, index: int, features, shape) -> None:
    """Chunks of a size-dependent pipeline must agree on the image size (recorded with the entry)."""
    expected = store.dimension(key)
    if features is not None and expected not in (None, features.shape[1]):
        raise ExtractError(f"chunk {index} gives {features.shape[1]} features where earlier chunks gave {expected}: "
                           f"the images have several sizes; {_RESIZE_HINT}")
    if shape is None:
        return
    recorded = store.attrs(key).get("image_shape")
    if recorded is None:
        store.set_attrs(key, image_shape=list(shape))
    elif tuple(recorded) != tuple(shape):
        raise ExtractError(f"chunk {index} has {shape[0]}x{shape[1]} images where earlier chunks had "
                           f"{recorded[0]}x{recorded[1]}; {_RESIZE_HINT}")

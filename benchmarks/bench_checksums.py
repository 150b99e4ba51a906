"""What the chunk checksums cost: reading a feature entry with and without CRC-32C, side by side.

    python benchmarks/bench_checksums.py CACHE_DIR KEY [--rounds 7]

Copies the entry's features into two scratch zarr arrays with the store's chunking and zstd compression,
one with the CRC-32C codec the store writes (``zarr.codecs.Crc32cCodec``) and one without, then times in
interleaved rounds: a full read of each (decompression, and the checksum of every chunk for the first),
and the warm-run check of the entry itself (``FeatureStore.damaged_chunks``: every chunk file read and
its CRC-32C computed, nothing decompressed). Prints the best round of each and the ratios.
"""
from __future__ import annotations

import json
import shutil
import tempfile

import harness
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from featurepipe.store import FeatureStore


def main() -> None:
    parser = harness.parser(__doc__, rounds=7)
    parser.add_argument("cache_dir")
    parser.add_argument("key")
    args = parser.parse_args()
    store = FeatureStore(args.cache_dir)
    source = store.feature_array(args.key)
    data = source[:]
    folder = tempfile.mkdtemp(prefix="featurepipe-crc-")
    try:
        arrays = {}
        for name, compressors in (("with CRC-32C", [ZstdCodec(level=0), Crc32cCodec()]),
                                  ("without", [ZstdCodec(level=0)])):
            array = zarr.create_array(f"{folder}/{name.split()[0]}", shape=data.shape, chunks=source.chunks,
                                      dtype="float32", compressors=compressors, zarr_format=3)
            array[:] = data
            arrays[name] = array

        def read(array):
            assert np.array_equal(array[:], data)

        def check():
            assert store.damaged_chunks(args.key) == {}

        reads = {name: (lambda array=array: read(array)) for name, array in arrays.items()}
        best = harness.best_times({**reads, "damaged_chunks": check}, args.rounds)
    finally:
        shutil.rmtree(folder)
    mib = data.nbytes / 2**20
    print(json.dumps({"machine": harness.describe(), "entry": args.key, "shape": data.shape, "mib": round(mib, 1),
                      "seconds": {k: round(v, 4) for k, v in best.items()},
                      "read_overhead": round(best["with CRC-32C"] / best["without"] - 1, 3),
                      "check_mib_per_s": round(mib / best["damaged_chunks"])}))


if __name__ == "__main__":
    main()

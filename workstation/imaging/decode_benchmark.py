"""What decoding compressed files in worker processes costs (imaging.isolated).

``python -m workstation.imaging.decode_benchmark FOLDER [--runs 15]`` times
``load_study(FOLDER)`` in-process and out-of-process (a warm pool), alternating, and prints
the medians, the overhead and the pool's cold start. To make a compressed test series::

    mkdir /tmp/ge_j2k; for f in SERIES/*.dcm; do gdcmconv --j2k "$f" /tmp/ge_j2k/; done

(``--rle``, ``--jpegls`` for the other codecs.) Its own module, not ``isolated``'s
``__main__``: the workers would import the main module a second time.
"""

from __future__ import annotations

import argparse
import sys

from workstation.imaging import isolated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workstation.imaging.decode_benchmark")
    parser.add_argument("folder", metavar="FOLDER", help="a folder of compressed DICOM files")
    parser.add_argument("--runs", type=int, default=15, help="timed loads of each kind")
    args = parser.parse_args(argv)
    result = isolated.benchmark(args.folder, args.runs)
    print(f"load_study({args.folder}): median of {args.runs} runs each, "
          f"{isolated.WORKERS} worker(s)")
    print(f"  in-process      {result['in_process_s'] * 1000:8.1f} ms")
    print(f"  out-of-process  {result['out_of_process_s'] * 1000:8.1f} ms "
          f"({result['overhead_pct']:+.1f} %)")
    print(f"  pool start      {result['pool_start_s'] * 1000:8.1f} ms (once, cold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

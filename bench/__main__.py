"""``python -m bench {speed,quality,http,icl,soak,threads,report,all} [--quick]``: run
benchmarks, write their JSON under docs/results/ and the tables of docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARTS = ("speed", "quality", "http", "icl", "soak", "threads")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("part", choices=(*PARTS, "report", "all"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument(
        "--device",
        default="cpu",
        help="speed only: where mmdshot's pool lives (cuda: results in speed-gpu.json)",
    )
    parser.add_argument(
        "--sizes",
        help="speed only: comma-separated pool sizes instead of 10000,100000,1000000",
    )
    parser.add_argument(
        "--kinds",
        help="speed only: comma-separated data kinds (isotropic, clustered, near-duplicates, "
        "tweets) instead of all four",
    )
    args = parser.parse_args()
    speed_options: dict = {}
    if args.sizes:
        speed_options["sizes"] = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    if args.kinds:
        speed_options["kinds"] = [kind.strip() for kind in args.kinds.split(",")]
    from bench import http, icl, icl_peers, quality, report, soak, speed, threads

    modules = {
        "speed": speed,
        "quality": quality,
        "http": http,
        "icl": icl,
        "soak": soak,
        "threads": threads,
    }
    parts = PARTS if args.part == "all" else () if args.part == "report" else (args.part,)
    for part in parts:
        if part == "speed":
            name = "speed.json" if args.device == "cpu" else "speed-gpu.json"
            speed.write(args.results / name, args.quick, args.device, **speed_options)
        else:
            modules[part].write(args.results / f"{part}.json", quick=args.quick)
        if part == "icl":
            icl_peers.write(args.results / "icl-peers.json", quick=args.quick)
    if not args.quick:
        report.write(args.results, Path("docs/benchmarks.md"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

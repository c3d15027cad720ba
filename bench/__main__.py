"""Run the benchmarks: `python -m bench [NAME ...]`.

Each `bench/bench_<name>.py` has a `main() -> None` that prints its own figures. Benchmarks
print numbers; they never pass or fail on timings. Without names, all run but those in
`BY_NAME_ONLY`.
"""

import importlib
import pkgutil
import sys
import time
from pathlib import Path

# istiod builds Istio's pilot-discovery first (tools/istiod.sh, ~22 minutes cold) and runs both
# control planes for minutes: `make bench BENCH=istiod`.
BY_NAME_ONLY = {"istiod"}


def _names() -> list[str]:
    here = Path(__file__).parent
    found = (m.name for m in pkgutil.iter_modules([str(here)]))
    return sorted(n.removeprefix("bench_") for n in found if n.startswith("bench_"))


def main(argv: list[str]) -> int:
    wanted = argv or [n for n in _names() if n not in BY_NAME_ONLY]
    unknown = sorted(set(wanted) - set(_names()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(_names())}")
        return 2
    for name in wanted:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"bench.bench_{name}").main()
        print(f"== {name} done in {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

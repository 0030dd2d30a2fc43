"""`python -m netembed bench`: the declared suite (netembed/bench.py) -> bench.md, bench.json, bench.png."""

from __future__ import annotations

import sys
from pathlib import Path

from .cli_checks import check_out_folder, check_threads, parse_list, set_threads
from .cli_errors import CliError
from .cli_executor import add_executor_flags, check_cluster_flags, executor_from_flags


def cmd_bench(a) -> None:
    from tqdm import tqdm

    from .bench import QUICK_SUITE, SUITE, run_bench, write_bench

    set_threads(a.threads)
    studies = QUICK_SUITE if a.quick else SUITE
    if a.studies:
        names = parse_list(a.studies, str, "--studies")
        unknown = sorted(set(names) - {s.name for s in studies})
        if unknown:
            raise CliError(f"--studies: no study {', '.join(unknown)}; the suite has {', '.join(s.name for s in studies)}")
        studies = tuple(s for s in studies if s.name in names)
    seeds = parse_list(a.seeds, int, "--seeds")
    bar = tqdm(total=len(studies) * (1 + len(seeds)), desc="bench", unit="cell", file=sys.stderr, disable=None)

    def progress(done, total, what):
        bar.n = done
        bar.set_postfix_str(what, refresh=True)

    try:
        with executor_from_flags(a) as executor:
            try:
                bench = run_bench(studies, seeds, executor, progress=progress)
            except ValueError as e:  # a study whose zoo cannot serve its protocols
                raise CliError(str(e)) from None
    finally:
        bar.close()
    command = "python -m netembed bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
    paths = write_bench(bench, Path(a.out), command.strip())
    print((Path(a.out) / "bench.md").read_text())
    print("wrote " + ", ".join(str(p) for p in paths))


def preflight_bench(a) -> None:
    """bench's flags, before any study runs."""
    check_out_folder(a.out)
    check_threads(a.threads)
    check_cluster_flags(a)
    if a.shards != 1:
        raise CliError(f"--shards: bench trains every study's zoo in one piece (its cells run through the executor), "
                       f"got {a.shards}")  # fmt: skip
    parse_list(a.seeds, int, "--seeds")
    if a.studies is not None:
        parse_list(a.studies, str, "--studies")


def add_bench_command(sub, fmt) -> None:
    p = sub.add_parser("bench", help="the declared suite (netembed/bench.py): studies x protocols x descriptions x "
                       "seeds -> bench.md, bench.json, bench.png", formatter_class=fmt)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the minutes-long suite with tiny zoos (what the tests run)")
    p.add_argument("--studies", default=None, help="comma-separated study names to run (default: the whole suite)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated embedder seeds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (every cell runs with one)")
    add_executor_flags(p)
    p.add_argument("--out", default="bench", help="folder to write bench.md, bench.json and bench.png into")
    p.set_defaults(fn=cmd_bench, preflight=preflight_bench)

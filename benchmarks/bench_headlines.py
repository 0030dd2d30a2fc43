"""The README's results table: the headline scores of one or more `python -m netembed bench` runs, side by side.

    python -m benchmarks.bench_headlines runs/bench/bench.json [more bench.json ...]

One row per study x protocol x score (held-out seeds: linear probe; held-out functions: retrieval@5 and
1-shot; parameters: ridge R^2 of each parameter that varies), one column per description, mean ± std over
the run's embedder seeds, exactly as bench.json holds them; then the command, date and machine of each run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTIONS = ("cloze", "raw_gradients", "raw_gradients_pca", "outputs", "weights", "weight_stats", "supervised")
ROWS = {"seeds": ("linear_accuracy",), "functions": ("retrieval_at_5", "one_shot")}  # parameters: per parameter


def cell(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def rows(study: str, summary: dict) -> list[tuple[str, list[str]]]:
    """(row label, one cell per description) for one study of a bench.json."""
    out = []
    for protocol, scores in ROWS.items():
        for score in scores:
            if protocol in summary:
                out.append((f"{study}: {protocol}, {score}", [cell(summary[protocol].get(d, {}).get(score))
                                                            for d in DESCRIPTIONS]))  # fmt: skip
    if "parameters" in summary:
        params = summary["parameters"].get("cloze", {})
        for name in params:
            if (params[name].get("r2") or {}).get("mean") is None:  # a constant parameter (the sines' phase): no R^2
                continue
            out.append((f"{study}: parameters, ridge R² {name}",
                        [cell(summary["parameters"].get(d, {}).get(name, {}).get("r2")) for d in DESCRIPTIONS]))  # fmt: skip
    return out


def table(bench_files: list[Path]) -> str:
    lines = ["| study: protocol, score | " + " | ".join(DESCRIPTIONS) + " |", "|---" * (len(DESCRIPTIONS) + 1) + "|"]
    sources = []
    for path in bench_files:
        bench = json.loads(path.read_text())
        for study, result in bench["studies"].items():
            for label, cells in rows(study, result["summary"]):
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        sources.append(f"- `{bench['command']}`: {bench['date']}, {bench['machine']}, {bench['seconds']:.0f} s, "
                       f"seeds {', '.join(map(str, bench['seeds']))}")  # fmt: skip
    return "\n".join(lines + [""] + sources)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", nargs="+", type=Path, help="bench.json files written by `python -m netembed bench`")
    print(table(parser.parse_args().bench_json))

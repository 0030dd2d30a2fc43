"""`python -m netembed embed`: networks trained elsewhere, placed among a run's models (imported.py)."""

from __future__ import annotations

from pathlib import Path

from .cli_errors import CliError
from .config import ACTIVATIONS
from .store import RunError, load_run


def cmd_embed(a) -> None:
    """embed: networks trained elsewhere, placed among a run's models (imported.py)."""
    import json

    from .imported import load_network, parse_input_range, predict

    run = load_run(a.run)
    input_range = parse_input_range(a.input_range)
    named = []
    for path in a.files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CliError(f"{path}: {e.strerror or e}") from None
        named.append((path, load_network(data, path, a.activation, input_range)))
    results = predict(run, named)
    for r in results:
        params = ", ".join(f"{k} {v:.3g}" for k, v in r.predicted_parameters.items())
        print(f"{r.file}: function f{r.predicted_function} ({params}); nearest models {r.neighbours}")
    if a.out:
        Path(a.out).write_text(json.dumps([r.to_json() for r in results], indent=1))
        print(f"wrote {a.out}")


def check_embed_flags(a) -> None:
    """embed's flags, before any file is read: the range, --out, then the run and its embedder."""
    from .imported import parse_input_range

    parse_input_range(a.input_range)  # its message names --input-range
    if a.out is not None and Path(a.out).is_dir():
        raise CliError(f"--out {a.out}: is a folder; give a JSON file to write")
    if a.run is None:
        raise CliError("--run is required: the run folder whose embedder places the networks")
    try:
        run = load_run(a.run)
    except RunError as e:
        raise RunError(f"{e} (--run)") from None
    if run.embedder is None:
        raise CliError(f"--run {a.run}: holds no trained embedder; make one with `python -m netembed run`")
    if not a.files:
        raise CliError("give at least one safetensors FILE to embed")


def add_embed_command(sub, fmt) -> None:
    p = sub.add_parser("embed", help="embed networks trained elsewhere (safetensors nn.Sequential MLPs, 1 -> 1) "
                       "with a run's embedder", formatter_class=fmt)  # fmt: skip
    p.add_argument("--run", default=None, help="run folder with a trained embedder (required)")
    p.add_argument("--activation", default="relu", choices=ACTIVATIONS, help="the networks' hidden activation")
    p.add_argument("--input-range", default="-1,1", metavar="LO,HI",
                   help="the interval the networks were trained on, mapped onto the family's [-1, 1]")
    p.add_argument("--out", default=None, help="JSON file to write, one object per network")
    p.add_argument("files", nargs="*", help="safetensors state_dicts (at least one)")
    p.set_defaults(fn=cmd_embed, preflight=check_embed_flags)

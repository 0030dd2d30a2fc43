"""The checks of the training commands (zoo, run, sweep) before any work: every config they will use is built and
the job is sized against the resource limits, so a bad flag or an oversized job costs nothing."""

from __future__ import annotations

from .cli_checks import check_device, check_out, check_threads, parse_list
from .cli_errors import CliError
from .cli_executor import check_executor_flags
from .cli_flags import built, flags_of
from .cli_run import cloze_config, parse_protocols
from .cli_zoo import checked_family_config, checked_zoo_config
from .config import ClozeConfig


def preflight_training(a) -> None:
    """zoo, run and sweep: the flags of each are a superset of the one before (cloze flags, then the sweep grid)."""
    from dataclasses import replace

    from .limits import check_pipeline

    check_out(getattr(a, "out", None))
    check_device(a.device)
    family = checked_family_config(a)
    zoo = checked_zoo_config(a)
    clozes = []
    if hasattr(a, "bottleneck"):
        check_threads(a.threads)
        base = built(lambda: cloze_config(a), flags_of(ClozeConfig))
        clozes = [base]
        if hasattr(a, "mask_ratios"):
            ratios = parse_list(a.mask_ratios, float, "--mask-ratios")
            bottlenecks = parse_list(a.bottlenecks, int, "--bottlenecks")
            cell_flags = flags_of(ClozeConfig, mask_ratio="--mask-ratios", bottleneck="--bottlenecks")
            clozes = [built(lambda r=r, b=b: replace(base, mask_ratio=r, bottleneck=b), cell_flags)
                      for r in ratios for b in bottlenecks]  # fmt: skip
    if getattr(a, "architectures", ""):
        from .mixed_zoo import part_configs

        parts = built(lambda: part_configs(zoo, a.architectures), {"architectures": "--architectures"})
        if a.shards > 1 or a.executor != "local" or a.ray_address:
            raise CliError("--architectures trains its parts here, one after another; drop --shards / --executor")
        for part in parts:
            check_pipeline(family.n_functions, part, [])
    check_executor_flags(a, family, zoo)
    if getattr(a, "protocols", None) is not None:
        from .protocols import check_protocol_zoo, default_unseen

        if {"functions", "parameters"} & set(parse_protocols(a.protocols)) and a.from_zoo is None:
            try:
                check_protocol_zoo(family.n_functions, zoo.models_per_function, default_unseen(family.n_functions))
            except ValueError as e:
                raise CliError(f"--protocols: {e}") from None
    if getattr(a, "from_zoo", None) is None:
        check_pipeline(family.n_functions, zoo, clozes, shards=a.shards, shard_by=a.shard_by)  # sized per shard
    else:  # the zoo is loaded, not trained: only the embedders count
        check_pipeline(1, replace(zoo, models_per_function=2, steps=0), clozes)

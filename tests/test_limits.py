"""Resource estimates: too-large jobs are refused up front with the estimate; limits come from the environment."""

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from netembed.config import ClozeConfig, ConfigError, ZooConfig
from netembed.limits import (
    TORCH_WORKSPACE,
    Limits,
    ResourceError,
    check,
    check_pipeline,
    check_zoo,
    estimate_cloze,
    estimate_sharded_zoo,
    estimate_zoo,
    mlp_params,
)

ROOT = Path(__file__).resolve().parents[1]  # the repository, wherever pytest was started from
ROOMY = Limits(max_memory_bytes=2**40, max_seconds=1e9, gflops=10.0, max_run_file_bytes=2**30)


def test_mlp_params_counts_weights_and_biases():
    assert mlp_params(ZooConfig(width=32, depth=2)) == (32 + 32) + (32 * 32 + 32) + (32 + 1)
    assert mlp_params(ZooConfig(width=5, depth=1)) == 5 + 5 + 5 + 1


def test_zoo_estimate_grows_linearly_in_models_and_steps():
    a, b = estimate_zoo(10, ZooConfig(models_per_function=100)), estimate_zoo(10, ZooConfig(models_per_function=200))
    assert a.memory_bytes < b.memory_bytes <= 2 * a.memory_bytes - TORCH_WORKSPACE  # at most linear
    assert b.flops == pytest.approx(2 * a.flops)
    doubled = ZooConfig(steps=2 * ZooConfig().steps)
    assert estimate_zoo(10, doubled).flops == pytest.approx(2 * estimate_zoo(10, ZooConfig()).flops)


def test_a_gpu_zoo_the_triton_step_takes_is_sized_without_batch_activations():
    """On a GPU the Triton step keeps a model's activations in registers (0.8 GiB measured for 64k models on an
    H200, against 10.3 GiB for the fused torch step): no (n, batch, width) tensors to count."""
    sine = ZooConfig(models_per_function=6400, activation="sine")  # 64k models
    deep = replace(sine, depth=3)  # a shape the kernel is not written for: the fused torch step
    activations = 4 * 64000 * sine.batch_size * sine.width * sine.depth * 4  # the fused step's four (n, B, W) float32
    saved = estimate_zoo(10, sine, "cpu").memory_bytes - estimate_zoo(10, sine, "cuda").memory_bytes
    assert saved == pytest.approx(1.2 * activations, rel=0.01)  # 20% slack; less the fit check buffer (0.35%)
    assert estimate_zoo(10, deep, "cuda").memory_bytes > estimate_zoo(10, sine, "cpu").memory_bytes


def test_the_default_settings_fit_a_modest_machine():
    """The default run must not be refused on a small laptop: 4 GiB for the job, 10 GFLOP/s, the default 4 h.

    An explicit Limits, not Limits.from_env(): what the host has free must not decide the outcome.
    """
    laptop = Limits(max_memory_bytes=4 * 2**30, max_seconds=4 * 3600, gflops=10.0, max_run_file_bytes=2**31)
    estimate = check_pipeline(10, ZooConfig(), [ClozeConfig()], laptop)
    assert TORCH_WORKSPACE < estimate.memory_bytes <= laptop.max_memory_bytes
    assert 0 < estimate.seconds(laptop.gflops) <= laptop.max_seconds
    assert estimate.flops > estimate_zoo(10, ZooConfig()).flops  # the embedder's work is counted too


def test_too_much_memory_is_refused_with_the_estimate():
    small = replace(ROOMY, max_memory_bytes=2**30)
    with pytest.raises(ResourceError, match=r"zoo of 1000000 models .* needs about [\d.]+ GiB .* limit of 1.00 GiB"):
        check_zoo(1000, ZooConfig(models_per_function=1000), small)
    assert isinstance(ResourceError("x"), ConfigError)  # the app and the CLI report it like any bad setting


def test_too_long_is_refused_with_the_estimate():
    quick = replace(ROOMY, max_seconds=60.0)
    with pytest.raises(ResourceError, match=r"about [\d.]+ h at 10 GFLOP/s, over the limit of 0.0166667 h"):
        check_zoo(10, ZooConfig(steps=100_000), quick)
    assert check_zoo(2, ZooConfig(models_per_function=2, steps=10), quick).flops > 0


def test_a_sweep_adds_work_and_takes_the_largest_memory():
    zoo = ZooConfig(models_per_function=10)
    clozes = [ClozeConfig(bottleneck=b) for b in (2, 4, 8)]
    one = check_pipeline(5, zoo, clozes[:1], ROOMY)
    sweep = check_pipeline(5, zoo, clozes, ROOMY)
    parts = [estimate_zoo(5, zoo)] + [estimate_cloze(50, c) for c in clozes]
    assert sweep.flops == pytest.approx(sum(p.flops for p in parts))
    assert sweep.memory_bytes == max(p.memory_bytes for p in parts)
    assert sweep.flops > one.flops and "sweep" in sweep.what


@pytest.mark.parametrize("by, n_shards, largest", [("function", 3, (4, 100)), ("seed", 3, (10, 34)), ("seed", 50, (10, 2))])
def test_a_sharded_zoo_is_sized_per_shard(by, n_shards, largest):
    """10 functions x 100 seeds in uneven shards (4+3+3 functions, 34+33+33 seeds): the largest shard's training
    peak (as a zoo of its own) plus the whole zoo's weights kept for the merge (3 copies); the whole zoo's work."""
    zoo = ZooConfig(models_per_function=100)
    functions, seeds = largest
    shard = estimate_zoo(functions, replace(zoo, models_per_function=seeds))
    whole = estimate_zoo(10, zoo)
    sharded = estimate_sharded_zoo(10, zoo, n_shards, by)
    kept = 3 * 1000 * mlp_params(zoo) * 4  # float32 weights of the whole zoo
    assert sharded.memory_bytes == shard.memory_bytes + kept
    assert sharded.memory_bytes < whole.memory_bytes and sharded.flops == whole.flops
    assert f"in {n_shards} shards of up to {functions * seeds} models" in sharded.what


def test_a_zoo_too_big_for_one_process_passes_in_shards(tmp_path, monkeypatch):
    """check_pipeline and the command line's preflight size the zoo per shard when --shards > 1."""
    from netembed.cli import build_parser, preflight

    zoo = ZooConfig(models_per_function=1000)
    whole, two, sharded = estimate_zoo(10, zoo), estimate_sharded_zoo(10, zoo, 2, "seed"), estimate_sharded_zoo(10, zoo, 10)
    assert sharded.memory_bytes < two.memory_bytes < whole.memory_bytes  # here ~0.6, 1.3 and 2 GiB
    limit = (sharded.memory_bytes + two.memory_bytes) // 2  # ten shards fit, two do not, nor the whole zoo
    between = replace(ROOMY, max_memory_bytes=limit)
    with pytest.raises(ResourceError, match="zoo of 10000 models"):
        check_pipeline(10, zoo, [], between)
    assert check_pipeline(10, zoo, [], between, shards=10).memory_bytes == sharded.memory_bytes
    monkeypatch.setenv("NETEMBED_MAX_MEMORY_MB", str(limit / 2**20))
    monkeypatch.setenv("NETEMBED_MAX_HOURS", "1000")
    args = ["zoo", "--functions", "10", "--models-per-function", "1000", "--out", str(tmp_path / "o")]
    with pytest.raises(ResourceError, match="NETEMBED_MAX_MEMORY_MB"):
        preflight(build_parser().parse_args(args))
    preflight(build_parser().parse_args([*args, "--shards", "10"]))  # no error: each shard fits
    with pytest.raises(ResourceError, match="in 2 shards of up to 5000 models"):  # two shards are still too big
        preflight(build_parser().parse_args([*args, "--shards", "2", "--shard-by", "seed"]))


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("NETEMBED_MAX_MEMORY_MB", "512")
    monkeypatch.setenv("NETEMBED_MAX_HOURS", "0.5")
    monkeypatch.setenv("NETEMBED_GFLOPS", "2")
    limits = Limits.from_env()
    assert (limits.max_memory_bytes, limits.max_seconds, limits.gflops) == (512 * 2**20, 1800.0, 2.0)
    with pytest.raises(ResourceError, match="NETEMBED_MAX_MEMORY_MB"):
        check_zoo(10, ZooConfig(models_per_function=1000))


@pytest.mark.parametrize("value", ["lots", "-1", "0", "nan", "inf"])
def test_bad_limit_settings_name_the_variable(monkeypatch, value):
    monkeypatch.setenv("NETEMBED_MAX_HOURS", value)
    with pytest.raises(ConfigError, match="NETEMBED_MAX_HOURS must be a positive number"):
        Limits.from_env()


def test_the_default_memory_limit_is_below_the_machines_memory(monkeypatch):
    monkeypatch.delenv("NETEMBED_MAX_MEMORY_MB", raising=False)  # the default, whatever the caller's shell sets
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < Limits.from_env().max_memory_bytes < physical


def test_the_zoo_estimate_is_an_upper_bound_of_the_measured_peak():
    """Train a zoo in a fresh process; its peak resident memory must stay under the estimate, and near it."""
    script = textwrap.dedent("""
        import os, resource, threading, time, torch
        torch.set_num_threads(1)
        from netembed.config import FamilyConfig, ZooConfig
        from netembed.family import make_family
        from netembed.zoo import train_zoo
        from netembed.limits import estimate_zoo
        page = os.sysconf("SC_PAGE_SIZE")
        rss_now = lambda: int(open("/proc/self/statm").read().split()[1]) * page
        rss_max = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        family = make_family(FamilyConfig(n_functions=5, min_derivative_distance=0.1))
        zc = ZooConfig(models_per_function=200, width=32, steps=20, batch_size=256)  # ~150 MiB
        seen, done = [rss_now()], threading.Event()
        def sample():  # the current resident size, every millisecond: not masked by earlier peaks
            while not done.is_set():
                seen.append(rss_now()); time.sleep(0.001)
        start_now, start_max = rss_now(), rss_max()
        t = threading.Thread(target=sample); t.start()
        train_zoo(family, zc)
        done.set(); t.join()
        peak = max(max(seen) - start_now, rss_max() - start_max)  # both are lower bounds of the true peak
        print(peak, estimate_zoo(5, zc).memory_bytes)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    peak, estimate = map(int, out.stdout.split())
    assert peak > 50 * 2**20, ("the zoo should need real memory, or the measurement says nothing", peak)
    assert peak < estimate < 4 * peak + TORCH_WORKSPACE, (peak, estimate)


def test_check_returns_the_estimate_when_it_fits():
    e = estimate_zoo(2, ZooConfig(models_per_function=2))
    assert check(e, ROOMY) is e and e.seconds(10.0) == e.flops / 1e10

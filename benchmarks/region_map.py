"""Issue 12's target "region map exact": at 10^5 random points, every point's activation pattern matches
the polygon it falls in. For 2 -> 32 -> 32 -> 1 nets (and one 2 -> 32 -> 32 -> 32 -> 1), random init and
lightly trained with plain torch on a 2D function, relu and leaky relu.

    OMP_NUM_THREADS=1 python -m benchmarks.region_map [--points 100000] [--seeds 0,1,2] [--train-steps 1500]

For each net: the exact region map from the weights (region_map.region_map), then at uniform random
points in [-1, 1]^2 the polygon each falls in (bucketed point-in-polygon, RegionMap.locate) against the
point's own activation pattern from a float64 forward pass. Points closer than 1e-9 to a kink line
(regions.boundary_distance, a lower bound on the distance to the region's edge) are counted apart:
there a float computation may decide either way. A second, harder probe puts one point 1e-7 inside
the midpoint of every edge of every cell. Prints a table; writes benchmarks/results/region_map.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from netembed.region_map import region_map
from netembed.regions import activation_patterns, boundary_distance, forward
from netembed.zoo import activation_fn

AMBIGUOUS = 1e-9  # points nearer than this to a kink line are counted apart
EDGE_PROBE = 1e-7  # how far inside each cell edge the edge probes sit


def init_layers(sizes: list[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One model, nn.Linear's default init, stacked like the zoo's layers: [(w (1, i, o), b (1, 1, o))]."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, o in itertools.pairwise(sizes):
        bound = 1 / math.sqrt(i)
        layers.append(((torch.rand(1, i, o, generator=g) * 2 - 1) * bound, (torch.rand(1, 1, o, generator=g) * 2 - 1) * bound))
    return layers


def target(x: torch.Tensor) -> torch.Tensor:
    """A smooth 2D function with a few bends on the square: x (B, 2) -> (B,)."""
    return torch.sin(math.pi * x[:, 0]) * torch.cos(1.5 * x[:, 1]) + 0.5 * x[:, 0] * x[:, 1] ** 2


def train(layers, activation: str, steps: int, seed: int) -> tuple[list, float]:
    """Plain torch Adam on target(), float32, fresh random batches; returns the trained layers and final MSE."""
    params = [t.clone().requires_grad_() for wb in layers for t in wb]
    opt = torch.optim.Adam(params, lr=3e-3)
    act = activation_fn(activation)
    g = torch.Generator().manual_seed(seed)

    def net(x):
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k][0] + params[k + 1][0, 0]
            if k < len(params) - 2:
                h = act(h)
        return h[:, 0]

    for _ in range(steps):
        x = torch.rand(512, 2, generator=g) * 2 - 1
        loss = (net(x) - target(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.rand(4096, 2, generator=g) * 2 - 1
    with torch.no_grad():
        mse = float((net(x) - target(x)).pow(2).mean())
    return [(params[k].detach(), params[k + 1].detach()) for k in range(0, len(params), 2)], mse


def edge_probes(rmap, inset: float = EDGE_PROBE) -> tuple[np.ndarray, np.ndarray]:
    """One point `inset` inside the midpoint of every edge of every cell -> points (Q, 2), their cells (Q,)."""
    points, cells = [], []
    for c, v in enumerate(rmap.vertices):
        e = np.roll(v, -1, 0) - v
        inward = np.stack([-e[:, 1], e[:, 0]], 1) / np.hypot(e[:, 0], e[:, 1])[:, None]  # left normal: inside for CCW
        points.append((v + np.roll(v, -1, 0)) / 2 + inset * inward)
        cells.append(np.full(len(v), c))
    return np.concatenate(points), np.concatenate(cells)


def check(layers, activation: str, n_points: int, seed: int) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    rmap = region_map(layers, activation)
    build_s = time.perf_counter() - t0
    x = np.random.default_rng(seed).uniform(-1, 1, (n_points, 2))
    t1 = time.perf_counter()
    cell = rmap.locate(x)
    locate_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    patterns = activation_patterns(layers, x, activation)[0]
    patterns_s = time.perf_counter() - t2
    near = boundary_distance(layers, x, activation)[0] < AMBIGUOUS
    mismatch = (cell < 0) | (rmap.patterns[cell] != patterns).any(1)

    probes, probe_cell = edge_probes(rmap)
    inside = rmap.depths(probes, probe_cell) > EDGE_PROBE / 2  # a cell thinner than the probe distance loses its probe
    probes, probe_cell = probes[inside], probe_cell[inside]
    probe_mismatch = (rmap.patterns[probe_cell] != activation_patterns(layers, probes, activation)[0]).any(1)
    probe_misplaced = rmap.locate(probes) != probe_cell
    # points exactly on the cells' inner edges: truly ambiguous; the near-boundary flag must catch every one
    on_edge, _ = edge_probes(rmap, inset=0.0)
    on_edge = np.unique(on_edge[(np.abs(on_edge) < 1 - 1e-12).all(1)], axis=0)  # inner edges, each once
    on_edge_flagged = boundary_distance(layers, on_edge, activation)[0] < AMBIGUOUS
    on_edge_mismatch = (rmap.patterns[rmap.locate(on_edge)] != activation_patterns(layers, on_edge, activation)[0]).any(1)
    return {
        "polygons": rmap.n_cells,
        "distinct_patterns_hit": len(np.unique(patterns, axis=0)),
        "area_error": float(abs(rmap.areas.sum() - 4)),
        "points": n_points,
        "mismatches": int(mismatch.sum()),
        "near_boundary": int(near.sum()),
        "mismatches_near_boundary": int((mismatch & near).sum()),
        "outside_every_polygon": int((cell < 0).sum()),
        "max_output_error": float(np.abs(rmap.evaluate(x) - forward(layers, x, activation)[0]).max()),
        "edge_probes": len(probes),
        "edge_probes_dropped_thin": int((~inside).sum()),
        "edge_probe_mismatches": int(probe_mismatch.sum()),
        "edge_probes_misplaced": int(probe_misplaced.sum()),
        "on_edge_points": len(on_edge),
        "on_edge_flagged_near": int(on_edge_flagged.sum()),
        "on_edge_mismatches": int(on_edge_mismatch.sum()),
        "build_s": build_s,
        "locate_s": locate_s,
        "patterns_s": patterns_s,
        "cpu_s": time.process_time() - cpu0,  # comparable on a shared machine, unlike wall time
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--seeds", default="0,1,2", help="init seeds of the random-init nets")
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "region_map.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    nets = []  # (name, layers, activation, note)
    for activation in ("relu", "leaky_relu"):
        for seed in (int(s) for s in a.seeds.split(",")):
            nets.append((f"2-32-32-1 init s{seed}", init_layers([2, 32, 32, 1], seed), activation, ""))
        t = time.perf_counter()
        trained, mse = train(init_layers([2, 32, 32, 1], 100), activation, a.train_steps, seed=100)
        nets.append(("2-32-32-1 trained", trained, activation, f"mse {mse:.1e}, {time.perf_counter() - t:.0f} s"))
        nets.append(("2-32-32-32-1 init s0", init_layers([2, 32, 32, 32, 1], 0), activation, ""))
    rows = []
    header = f"{'net':22s} {'act':10s} {'polygons':>8s} {'hit':>5s} {'mism':>5s} {'near':>5s} {'m|near':>6s} {'probes':>7s} {'p-mism':>6s} {'build s':>7s} {'locate s':>8s}  note"
    print(header)
    for name, layers, activation, note in nets:
        r = check(layers, activation, a.points, seed=1)
        rows.append({"net": name, "activation": activation, "note": note, **r})
        print(f"{name:22s} {activation:10s} {r['polygons']:8d} {r['distinct_patterns_hit']:5d} {r['mismatches']:5d} "
              f"{r['near_boundary']:5d} {r['mismatches_near_boundary']:6d} {r['edge_probes']:7d} "
              f"{r['edge_probe_mismatches'] + r['edge_probes_misplaced']:6d} {r['build_s']:7.2f} {r['locate_s']:8.2f}  {note}",
              flush=True)  # fmt: skip
    total = sum(r["mismatches"] for r in rows)
    print(f"total mismatches over {len(rows)} nets x {a.points} points: {total} "
          f"(near a boundary: {sum(r['near_boundary'] for r in rows)} points); "
          f"edge-probe mismatches: {sum(r['edge_probe_mismatches'] + r['edge_probes_misplaced'] for r in rows)}; "
          f"points exactly on inner edges: {sum(r['on_edge_points'] for r in rows)}, flagged near a boundary: "
          f"{sum(r['on_edge_flagged_near'] for r in rows)}, their pattern differs from the located cell's: "
          f"{sum(r['on_edge_mismatches'] for r in rows)}")  # fmt: skip
    Path(a.out).write_text(json.dumps({"points": a.points, "ambiguous_distance": AMBIGUOUS, "edge_probe": EDGE_PROBE, "rows": rows}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

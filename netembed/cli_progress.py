"""Progress bars of the command line: tqdm on stderr, quiet when stderr is not a terminal."""

from __future__ import annotations

import sys

from .divergence import finite_median


class ProgressBar:
    """tqdm over training steps, on stderr; quiet when stderr is not a terminal."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None, leave=False)
        self.last = 0

    def __call__(self, step: int, losses) -> None:
        self.bar.update(step - self.last)
        self.last = step
        self.bar.set_postfix(median_loss=f"{finite_median(losses):.2e}")  # NaN prints as "nan"

    def close(self):
        self.bar.close()


class ShardBar:
    """tqdm over shards, with the model-steps done; on stderr, quiet when stderr is not a terminal."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, info: dict) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="zoo shards", unit="shard", file=sys.stderr, disable=None, leave=False)
            if info["loaded"]:
                print(f"resuming: {info['loaded']} of {total} shards loaded from disk", file=sys.stderr)
        self.bar.n = done
        self.bar.set_postfix_str(f"{info['model_steps']:.3g}/{info['model_steps_total']:.3g} model-steps", refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class StageBars:
    """One tqdm bar per pipeline stage, on stderr; quiet when stderr is not a terminal."""

    def __init__(self):
        self.stage, self.bar = None, None

    def __call__(self, stage: str, fraction: float, info: dict) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=1000, desc=stage, file=sys.stderr, disable=None, leave=False,
                            bar_format="{desc:>12}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")  # fmt: skip
        self.bar.n = int(1000 * fraction)
        post = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items() if k in ("loss", "r2")}
        self.bar.set_postfix(post, refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""Every config refuses a bad setting where it is built, with one message naming the setting and its range."""

import math
import re

import pytest

from netembed.config import ClozeConfig, ConfigError, FamilyConfig, ZooConfig, from_dict, max_family_size, to_dict
from netembed.family import FamilyError, make_family

NAN, INF = float("nan"), float("inf")

BAD = [
    # zero or negative counts
    (FamilyConfig, "n_functions", 0), (FamilyConfig, "n_functions", -3), (FamilyConfig, "max_tries", 0),
    (ZooConfig, "models_per_function", 0), (ZooConfig, "models_per_function", 1), (ZooConfig, "width", 0),
    (ZooConfig, "depth", -1), (ZooConfig, "steps", -1), (ZooConfig, "batch_size", 0),
    (ClozeConfig, "n_inputs", 0), (ClozeConfig, "steps", -5), (ClozeConfig, "models_per_batch", 0),
    (ClozeConfig, "n_heads", 0), (ClozeConfig, "bottleneck", 0), (ClozeConfig, "n_layers", -1),
    # degree outside 1..8
    (FamilyConfig, "degree_min", 0), (FamilyConfig, "degree_max", 9), (FamilyConfig, "degree_min", -2),
    # mask ratio outside (0, 1)
    (ClozeConfig, "mask_ratio", 0.0), (ClozeConfig, "mask_ratio", 1.0), (ClozeConfig, "mask_ratio", -0.5),
    (ClozeConfig, "mask_ratio", 1.5),
    # bottleneck larger than the encoder
    (ClozeConfig, "bottleneck", 65),
    # learning rates: zero, negative, absurd
    (ZooConfig, "lr", 0.0), (ZooConfig, "lr", -1e-3), (ZooConfig, "lr", 1e3), (ClozeConfig, "lr", 0.0),
    # NaN / Inf anywhere a number goes
    *[(c, f, v) for c, f in [(FamilyConfig, "min_derivative_distance"), (ZooConfig, "lr"), (ZooConfig, "train_fraction"),
                            (ZooConfig, "fail_relative_mse"), (ClozeConfig, "mask_ratio"), (ClozeConfig, "lr")]
      for v in (NAN, INF, -INF)],
    *[(c, f, v) for c, f in [(FamilyConfig, "n_functions"), (ZooConfig, "width"), (ZooConfig, "steps"),
                            (ClozeConfig, "bottleneck"), (ClozeConfig, "n_inputs")] for v in (NAN, INF)],
    # wrong types: a float, a bool or a string where a count goes
    (FamilyConfig, "n_functions", 2.5), (ZooConfig, "width", True), (ZooConfig, "steps", "100"),
    (FamilyConfig, "seed", -1), (ZooConfig, "activation", "sigmoid"), (ClozeConfig, "mask_unit", "token"),
    (ClozeConfig, "loss_scale", "relative"),
    (ClozeConfig, "input_scale", "relative"),
]  # fmt: skip


@pytest.mark.parametrize("cls, name, value", BAD, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in BAD])
def test_bad_setting_is_refused_with_its_name_in_one_line(cls, name, value):
    with pytest.raises(ConfigError) as info:
        cls(**{name: value})
    message = str(info.value)
    assert name in message and "\n" not in message
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        assert any(ch in message for ch in "[(.>"), f"no allowed range in: {message}"


def test_degree_range_must_be_ordered():
    with pytest.raises(ConfigError, match="degree_max must be >= degree_min"):
        FamilyConfig(degree_min=5, degree_max=4)


def test_heads_must_divide_the_model_width():
    with pytest.raises(ConfigError, match="d_model .* n_heads"):
        ClozeConfig(d_model=64, n_heads=5)


def test_defaults_are_valid_and_round_trip_through_dicts():
    for cls in (FamilyConfig, ZooConfig, ClozeConfig):
        assert from_dict(cls, to_dict(cls())) == cls()


@pytest.mark.parametrize("data, match", [({"n_functoins": 3}, "n_functoins"), ([1, 2], "JSON object"),
                                         ({"n_functions": None}, "n_functions")])  # fmt: skip
def test_from_dict_names_typos_and_wrong_types(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(FamilyConfig, data)


# ---------------------------------------------------------------- more functions than the variety allows


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_functions=3, degree_min=1, degree_max=1),  # only x and -x exist
        dict(n_functions=2, degree_min=1, degree_max=1, min_derivative_distance=2.5),  # x, -x differ by 2
        dict(n_functions=2, degree_max=3, min_derivative_distance=19.0),  # over twice Markov's bound 3^2
        dict(n_functions=1000, degree_min=2, degree_max=2, min_derivative_distance=8.0),  # (1 + 1)^2 = 4 at most
    ],
)
def test_impossible_variety_is_refused_up_front(kwargs):
    with pytest.raises(ConfigError, match=r"n_functions .*\(at most \d+\)"):
        FamilyConfig(**kwargs)


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("distance", [0.5, 2.0, 6.0])
def test_the_bound_never_refuses_a_family_that_can_be_drawn(degree, distance):
    """Draw as many members as 400 tries allow: that many must always be allowed by the bound."""
    bound = max_family_size(degree, distance)
    ask = int(min(bound, 60))
    try:
        found = make_family(FamilyConfig(n_functions=ask, degree_min=degree, degree_max=degree,
                                         min_derivative_distance=distance, max_tries=400)).n_functions  # fmt: skip
    except FamilyError as e:
        found = int(re.search(r"only (\d+) found", str(e)).group(1))
    assert 1 <= found <= bound
    FamilyConfig(n_functions=max(found, 1), degree_min=degree, degree_max=degree, min_derivative_distance=distance)


def test_possible_by_the_bound_but_not_found_is_a_clear_family_error():
    config = FamilyConfig(n_functions=20, degree_min=2, degree_max=2, min_derivative_distance=2.0, max_tries=300)
    with pytest.raises(FamilyError, match="could not draw 20 functions .* Lower the variety threshold \\(min_derivative_distance"):
        make_family(config)

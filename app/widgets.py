"""Widgets whose values are shareable settings: kept in the session across pages, and in the URL.

A setting's value comes from, in order: this session (the user set it earlier, maybe on
another page), the URL query (a shared link), the default. Values from the URL are
checked and silently ignored when they do not fit the widget, so a hand-edited link can
only fall back to defaults. After drawing, the value is written back to both places.

Streamlit forgets a widget's state when a page without it runs, so each widget is seeded
from the session's copy (never via `value=`, which would fight the widget's own state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from netembed.config import ConfigError, check_value, help_text, parse_range, spec, specs


def _settings() -> dict:
    return st.session_state.setdefault("ne_settings", {})


def _url_texts() -> dict:
    """key -> the setting's text in the URL: every setting this session has seen, drawn or only linked."""
    return st.session_state.setdefault("ne_url", {})


NOT_CARRIED = ("run",)  # the run picker keeps its own URL key (a link to a missing run must stay as it is)


def carry_url() -> None:
    """Keep every setting in the URL on every page. A page change gives the browser a URL without a query,
    and a page draws only its own widgets; without this, a link copied on the Zoo page would lose the
    family (fam_*) chosen on the Family page. Call once per script run, before the pages draw."""
    texts = _url_texts()
    for key in st.query_params:  # a link's settings (checked when their widget or setting() reads them)
        if key not in NOT_CARRIED and key not in texts:
            texts[key] = st.query_params[key]
    for key, text in texts.items():
        if st.query_params.get(key) != text:
            st.query_params[key] = text


def _from_url(key: str, parse: Callable[[str], Any], valid: Callable[[Any], bool]):
    raw = st.query_params.get(key)
    if raw is None:
        return None
    try:
        value = parse(raw)
    except (TypeError, ValueError, LookupError):  # LookupError: a choice not among the options
        return None
    return value if valid(value) else None


def _seed(key: str, default, parse, valid) -> None:
    if key in st.session_state:
        return
    value = _settings().get(key)
    if value is None:
        value = _from_url(key, parse, valid)
    st.session_state[key] = default if value is None else value


def _keep(key: str, to_url: Callable[[Any], str] = str):
    value = st.session_state[key]
    _settings()[key] = value
    text = to_url(value)
    _url_texts()[key] = text
    if st.query_params.get(key) != text:
        st.query_params[key] = text
    return value


def setting(key: str, default, parse: Callable[[str], Any] | None = None):
    """A setting's current value without drawing its widget (e.g. another page's setting, or one in a link)."""
    value = _settings().get(key)
    if value is None:
        value = _from_url(key, parse or type(default), lambda v: True)
    return default if value is None else value


def put(key: str, value) -> None:
    """Set a setting from code; call it before its widget is drawn in this run (e.g. from main.py)."""
    _settings()[key] = value
    st.session_state[key] = value


def forget(*keys: str) -> None:
    """Reset settings to their defaults (the widgets are re-seeded on the next run)."""
    for key in keys:
        _settings().pop(key, None)
        _url_texts().pop(key, None)
        st.session_state.pop(key, None)
        if key in st.query_params:
            del st.query_params[key]


def number(label: str, key: str, default: int | float, lo, hi, step=None, **kw):
    """An int or float input in [lo, hi] (the type of `default` decides)."""
    kind = type(default)
    _seed(key, default, kind, lambda v: lo <= v <= hi)
    st.number_input(label, min_value=kind(lo), max_value=kind(hi), step=step, key=key, **kw)
    return _keep(key)


def slider(label: str, key: str, default, lo, hi, step=None, **kw):
    kind = type(default)
    _seed(key, default, kind, lambda v: lo <= v <= hi)
    st.slider(label, min_value=kind(lo), max_value=kind(hi), step=step, key=key, **kw)
    return _keep(key)


def range_slider(label: str, key: str, default: tuple[int, int], lo: int, hi: int, **kw) -> tuple[int, int]:
    _seed(key, tuple(default), parse_range, lambda v: lo <= v[0] <= v[1] <= hi)
    st.slider(label, min_value=lo, max_value=hi, key=key, **kw)
    return tuple(_keep(key, lambda v: f"{v[0]}-{v[1]}"))


def choice(label: str, key: str, options: list, default, fmt=str, horizontal: bool = False, **kw):
    """A selectbox (or horizontal radio) over `options`; options are matched in the URL by str()."""
    by_text = {str(o): o for o in options}
    _seed(key, default, lambda t: by_text[t], lambda v: v in options)
    if st.session_state[key] not in options:  # the options changed under a kept value
        st.session_state[key] = default
    widget = st.radio if horizontal else st.selectbox
    extra = {"horizontal": True} if horizontal else {}
    widget(label, options, format_func=fmt, key=key, **extra, **kw)
    return _keep(key)


def multi(label: str, key: str, options: list, default: list, fmt=str, pills: bool = False, **kw) -> list:
    """A multiselect (or, pills=True, every option as a toggle pill: for a few short options, shown all at
    once and wrapping on a narrow window); kept in the URL as a comma-separated list."""
    by_text = {str(o): o for o in options}

    def parse(text: str) -> list:
        return [by_text[t] for t in text.split(",") if t]

    _seed(key, list(default), parse, lambda v: all(o in options for o in v))
    kept = [v for v in st.session_state[key] if v in options]
    # the options changed under the kept choice (another function, another run) and left nothing: the default,
    # not an empty picker; a choice the user emptied on purpose stays empty
    st.session_state[key] = kept if kept or not st.session_state[key] else [v for v in default if v in options]
    if pills:
        st.pills(label, options, selection_mode="multi", format_func=fmt, key=key, **kw)
    else:
        st.multiselect(label, options, format_func=fmt, key=key, **kw)
    return list(_keep(key, lambda v: ",".join(str(o) for o in v)))


def text(label: str, key: str, default: str = "", **kw) -> str:
    """A one-line text input (checked by its caller: any text is kept)."""
    _seed(key, default, str, lambda v: True)
    st.text_input(label, key=key, **kw)
    return str(_keep(key))


def toggle(label: str, key: str, default: bool, **kw) -> bool:
    _seed(key, default, lambda t: {"1": True, "true": True, "0": False, "false": False}[t.lower()], lambda v: True)
    st.toggle(label, key=key, **kw)
    return bool(_keep(key, lambda v: "1" if v else "0"))


# ---------------------------------------------------------------- widgets derived from a config's declarations


def _fits(s: dict, value) -> bool:
    try:
        check_value(s, value)
    except ConfigError:
        return False
    return True


def _bounds(s: dict, step, slider: bool) -> tuple:
    """Closed bounds a widget can show for the declared range. A slider's open float bound moves in by one
    step (a slider can only show closed ends); a number input keeps it (left at it, the config explains)."""
    lo, hi = s["lo"], s["hi"]
    if slider and s["kind"] is float:
        lo = lo + step if s["open_lo"] else lo
        hi = hi - step if s["open_hi"] else hi
    return lo, hi


def config_number(cls, name: str, key: str, label: str, base=None, *, slider: bool = False, step=None, **kw):
    """A number input (or slider) for the setting `name` of config class `cls`: default from `base` (or the
    declaration), bounds and help from the declaration (a bound set by another setting is the config's to check)."""
    s = spec(cls, name)
    kind = s["kind"]
    default = kind(getattr(base, name) if base is not None else s["default"])
    lo, top = _bounds(s, step, slider)
    _seed(key, default, kind, lambda v: _fits(s, v) and lo <= v and (top is None or v <= top))
    widget = st.slider if slider else st.number_input
    widget(label, min_value=kind(lo), max_value=None if top is None else kind(top), step=step, key=key,
           help=help_text(s), **kw)  # fmt: skip
    return kind(_keep(key))


def config_choice(cls, name: str, key: str, label: str, base=None, **kw):
    """A selectbox (or horizontal radio, horizontal=True) over the declared choices of `cls.name`."""
    s = spec(cls, name)
    default = getattr(base, name) if base is not None else s["default"]
    return choice(label, key, list(s["choices"]), default, help=s["help"], **kw)


def config_multi(cls, name: str, key: str, label: str, default: list, options=None, **kw) -> list:
    """Pills (widgets.multi) for several values of the setting `cls.name` (e.g. the widths of a mixed zoo's
    architectures): the declared choices, or for a number the `options` the page offers that the declaration
    allows (its bounds); help from the declaration. Kept in the URL as a comma-separated list."""
    s = spec(cls, name)
    offered = list(s["choices"]) if s["kind"] is str else [v for v in options if _fits(s, v)]
    if not offered:
        raise ValueError(f"none of the options {options} fits the declared {name}")
    return multi(label, key, offered, [v for v in default if v in offered], help=help_text(s), pills=True, **kw)


def config_range(cls, lo_name: str, hi_name: str, key: str, label: str, base=None, **kw) -> tuple[int, int]:
    """One range slider for two int settings (e.g. degree_min, degree_max), bounds from their declarations."""
    lo, hi = spec(cls, lo_name), spec(cls, hi_name)
    source = base if base is not None else cls()
    default = (getattr(source, lo_name), getattr(source, hi_name))
    return range_slider(label, key, default, lo["lo"], hi["hi"], help=f"{lo['help']} to {hi['help']}", **kw)


def more_settings(cls, prefix: str, base=None, drawn=()) -> dict:
    """Widgets for every declared setting of `cls` not in `drawn`, keyed `prefix_field` -> {field: value}.

    A setting added to a config shows up here with no page edit; pages draw their main settings
    themselves (layout, labels) and leave the rest to this.
    """
    out = {}
    for s in specs(cls):
        if s["name"] in drawn:
            continue
        key, label = f"{prefix}_{s['name']}", s["name"].replace("_", " ").capitalize()
        if s["kind"] is str:
            out[s["name"]] = config_choice(cls, s["name"], key, label, base)
        else:
            out[s["name"]] = config_number(cls, s["name"], key, label, base, format="%g" if s["kind"] is float else None)
    return out


def config_setting(cls, name: str, key: str, base=None):
    """A config setting's current value without drawing its widget (another page's), default from `base`."""
    s = spec(cls, name)
    default = getattr(base, name) if base is not None else s["default"]
    return s["kind"](setting(key, default, parse=s["kind"]))

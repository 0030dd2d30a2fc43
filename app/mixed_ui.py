"""A mixed zoo (mixed_zoo.py, several architectures) on the pages that train embedders: one architecture at a time.

The embedder batches the weights of the models it trains on, and weights of different widths
and depths cannot share one tensor (cloze_training.train_embedder refuses a whole mixed zoo).
So the Embedder and Sweep pages train on the models of one chosen architecture, and their new
run holds that part (a one-architecture zoo on which every page works).
"""

from __future__ import annotations

import streamlit as st

from app import widgets


def one_architecture(zoo, key: str, what: str):
    """(the zoo to train on, its architecture label or None): a mixed zoo's chosen part, or the zoo itself."""
    if not hasattr(zoo, "parts"):
        return zoo, None
    label = widgets.choice("Architecture to train on", key, zoo.labels, zoo.labels[0],
                           help="an embedder trains on the models of one architecture")  # fmt: skip
    part = zoo.part_of(label)
    st.caption(f"This zoo mixes {len(zoo.parts)} architectures ({', '.join(zoo.labels)}). {what} trains on one "
               "architecture's models: weights of different widths and depths cannot be batched together. "
               f"The new run holds the {part.n_models} models of {label}.")  # fmt: skip
    return part, label

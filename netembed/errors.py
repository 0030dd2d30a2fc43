"""The errors a user can act on: a bad setting, a diverged zoo, a refused size, a bad family or run file.

Each is defined beside what raises it, except the two whose modules import torch: they are
defined here, so that catching them needs no torch (the app's first page does not import it);
this is the one list of them. The command line
(cli_errors.exit_status) and the dashboard (app/jobs.py, app/main.py) show these as their
message alone; anything else is a bug and keeps its type (and, on the command line, a hint
for the traceback).
"""

from __future__ import annotations

from .config import ConfigError
from .divergence import DivergenceError
from .executor import ExecutorError
from .family import FamilyError
from .limits import ResourceError
from .run_schema import RunError


class NoExactSections(ValueError):
    """Smooth activations (tanh, gelu) have no line-sections; use sampled gradients instead (gradients.py)."""


class ImportedNetworkError(ValueError):
    """A file that is not a usable 1 -> 1 MLP state_dict; the message names the file and the problem (imported.py)."""


# DivergenceError and ResourceError are ConfigErrors (a setting to change); listed to say so. ExecutorError: Ray
# missing, or a cluster address nothing answers on.
USER_ERRORS = (ConfigError, DivergenceError, ResourceError, FamilyError, RunError, NoExactSections, ImportedNetworkError,
               ExecutorError)  # fmt: skip

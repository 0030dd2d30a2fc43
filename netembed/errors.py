"""The errors a user can act on: a bad setting, a diverged zoo, a refused size, a bad family or run file.

Each is defined beside what raises it; this is the one list of them. The command line
(cli_errors.exit_status) and the dashboard (app/jobs.py, app/main.py) show these as their
message alone; anything else is a bug and keeps its type (and, on the command line, a hint
for the traceback).
"""

from __future__ import annotations

from .config import ConfigError
from .divergence import DivergenceError
from .family import FamilyError
from .gradients import NoExactSections
from .imported import ImportedNetworkError
from .limits import ResourceError
from .run_schema import RunError

# DivergenceError and ResourceError are ConfigErrors (a setting to change); listed to say so.
USER_ERRORS = (ConfigError, DivergenceError, ResourceError, FamilyError, RunError, NoExactSections, ImportedNetworkError)

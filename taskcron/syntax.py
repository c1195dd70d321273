"""The names `taskcron.store` still imports from here; they live in `taskcron.inputs`.

Light, as it is on the idle path: it imports only `taskcron.inputs`.
"""

from __future__ import annotations

from taskcron.inputs import LOG_LEVELS, covers, in_scope

__all__ = ["LOG_LEVELS", "covers", "in_scope"]

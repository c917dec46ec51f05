"""Where ``--file`` deployments may load Python code from (``MODELDECK_ALLOWED_FILE_DIRS``).

A file deployment runs its file's code in the replicas with the platform's rights, so the
control plane only accepts files inside the allowed directories. Paths are resolved first
(symbolic links followed, ``..`` collapsed), so neither a traversal nor a link that points
outside gets through; nothing is looked up outside the allowed directories, so the answer
never tells whether a file exists elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from modeldeck.config import Settings
from modeldeck.errors import ValidationFailed


def allowed_python_file(path: str, settings: Settings, field: str = "file") -> str:
    """``path`` resolved, when it is an existing ``.py`` file in an allowed directory; else a
    422 naming ``field``."""
    candidate = Path(path)
    if not candidate.is_absolute():
        raise ValidationFailed(
            f"{field} must be an absolute path on the platform's machine, got {path!r}",
            details={"field": field},
        )
    resolved = candidate.resolve()
    allowed = settings.resolved_allowed_file_dirs()
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise ValidationFailed(
            f"{field} {path!r} is outside the directories deployments may load files from "
            "(MODELDECK_ALLOWED_FILE_DIRS): " + ", ".join(str(d) for d in allowed),
            details={"field": field, "allowed_dirs": [str(d) for d in allowed]},
        )
    if resolved.suffix != ".py" or not resolved.is_file():
        raise ValidationFailed(
            f"{field} {path!r} is not an existing Python (.py) file", details={"field": field}
        )
    return str(resolved)

"""The cgroup backends: the only place that knows which cgroup mode is in use.

Everything outside this package talks to a :class:`~lanco.cgroups.backend.Backend`, which hides whether a task
is tracked in the unified (v2) tree or in lanco's named v1 hierarchy, and where its controllers live.
"""

from lanco.cgroups.backend import Backend, open_backend
from lanco.cgroups.detect import MODES, CgroupMount, natural_mode, read_mounts

__all__ = ["MODES", "Backend", "CgroupMount", "natural_mode", "open_backend", "read_mounts"]

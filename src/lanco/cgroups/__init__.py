"""The cgroup backends: the only place that knows which cgroup mode is in use.

Everything outside this package talks to a :class:`~lanco.cgroups.backend.Backend`, which hides whether a task
is tracked in the unified (v2) tree or in lanco's named v1 hierarchy, and where its controllers live. This
module imports nothing, so that reading the mode list costs nothing.
"""

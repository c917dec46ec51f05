"""``cml.workers_v1`` is not supported by modeldeck: it has no sessions to launch workers from."""

raise ImportError(
    "cml.workers_v1 is not supported by modeldeck: it has no sessions to launch workers from "
    "(docs/cml-compatibility.md lists what is)"
)

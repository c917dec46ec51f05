"""``cml.data_v1`` is not supported by modeldeck: it keeps no data connections."""

raise ImportError(
    "cml.data_v1 is not supported by modeldeck: it keeps no data connections; connect with "
    "your database's own client (docs/cml-compatibility.md lists what is)"
)

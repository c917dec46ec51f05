"""modeldeck's stand-in for Cloudera ML's ``cml`` package (see ``modeldeck.compat``)."""

"""Built-in KV-cache methods, one file each, registered with ``@kv_method("name")`` (see ``methods``).

Nothing here is imported to list them: ``methods.KV_METHODS`` reads these files' decorators, so a new file
is a new method (in ``kv.method_names()``, ``kv.compress``, the experiment API doc and the benchmark).
"""

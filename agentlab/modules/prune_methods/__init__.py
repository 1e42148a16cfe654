"""Built-in pruning methods, one file each, registered with ``@prune_method("name")`` (see ``family_methods``).

Nothing here is imported to list them: ``family_methods.PRUNE_METHODS`` reads these files' decorators, so a new
file is a new method of the harness's ``prune`` family.
"""

"""Built-in window-attention methods, one file each, registered with ``@attention_method("name")``.

Nothing here is imported to list them: ``family_methods.ATTENTION_METHODS`` reads these files' decorators, so a
new file is a new method of the harness's ``attention`` family.
"""

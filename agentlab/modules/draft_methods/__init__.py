"""Built-in speculative-decoding drafters, one file each, registered with ``@draft_method("name")``.

Nothing here is imported to list them: ``family_methods.DRAFT_METHODS`` reads these files' decorators, so a new
file is a new method of the harness's ``speculative`` family.
"""

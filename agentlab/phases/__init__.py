"""One module per phase, named as its graph node; each node is a function of (state, runtime)
returning a `Command[Literal[<its exits>]]`. `spec.py` is the phase table (the one place phase
identity lives), `checkpoint.py` the human stop after every phase, `common.py` what phases share."""

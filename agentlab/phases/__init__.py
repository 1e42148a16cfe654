"""One module per phase. Each node is a function of (state, runtime) returning a Command."""

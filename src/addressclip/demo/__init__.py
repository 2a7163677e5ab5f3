"""The `make demo` pipeline (render → pretrain → train → report → predict)."""

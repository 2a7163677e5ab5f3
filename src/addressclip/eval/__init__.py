"""Evaluation: the paper's SSA-k / SA-k accuracies (more in later issues)."""

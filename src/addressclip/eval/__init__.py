"""Evaluation: SSA-k / SA-k and the metrics beyond the paper (metre error, per-address accuracy,
neighbouring-sub-street confusion, accuracy by distance to intersections, calibration), the shared
feature store, and the benchmark report (`benchmark.py`, `report.py`, `figures.py`)."""

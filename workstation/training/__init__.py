"""Data manifest, leakage-free splits, training, evaluation. Never imported by the app."""

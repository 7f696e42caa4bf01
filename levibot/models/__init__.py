"""Models: LightGBM, the sequence transformer, calibration."""

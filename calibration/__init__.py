"""Calibration data and quantizers (see the calibration issue; nothing here yet)."""

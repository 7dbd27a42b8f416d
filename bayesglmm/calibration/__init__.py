"""Simulation-based calibration (:mod:`.sbc`) and rank-uniformity tests (:mod:`.uniformity`)."""

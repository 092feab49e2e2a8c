"""System testbenches: the integrated Device through its top-level ports."""

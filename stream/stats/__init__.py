"""Drift statistics: PSI, KS and category shares between a reference and a window, pure."""

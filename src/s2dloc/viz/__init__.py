"""Figures: F-PnP convergence plots (matplotlib, written as PNG)."""

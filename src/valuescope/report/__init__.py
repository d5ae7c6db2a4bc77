"""Self-contained HTML reports for valuescope run directories."""

from valuescope.report.html import build_report

__all__ = ["build_report"]

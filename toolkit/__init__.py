"""migkit: offline toolkit for household surveys on international migration in North and Central Asia.

XLSForm -> XForm -> one form model -> decrypt, ingest, validate, weight, estimate, export.
"""

from toolkit.errors import Issue, Location, Severity, ToolkitError
from toolkit.report import Report

__version__ = "0.1.0"

__all__ = ["Issue", "Location", "Report", "Severity", "ToolkitError", "__version__"]

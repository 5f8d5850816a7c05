"""Privacy operations: erasure, access export, retention, and redaction.

Each operation module says what it guarantees; docs/privacy.md maps every
guarantee to its test.
"""

from ivr.privacy.erasure import erase, receipts, resume_erasures
from ivr.privacy.export import CSV_COLUMNS, ExportRequest, default_window, export
from ivr.privacy.retention import apply_retention, purge_expired
from ivr.privacy.subject import (
    DEFAULT_EXPORT_WINDOW,
    Kind,
    LiveElsewhere,
    SubjectNotFound,
    pseudonym,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_EXPORT_WINDOW",
    "ExportRequest",
    "Kind",
    "LiveElsewhere",
    "SubjectNotFound",
    "apply_retention",
    "default_window",
    "erase",
    "export",
    "pseudonym",
    "purge_expired",
    "receipts",
    "resume_erasures",
]

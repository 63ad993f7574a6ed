"""Every text parameter that reaches a column is bounded by exactly that column's width."""

from __future__ import annotations

from sqlalchemy import String

from hpcplane.api.actions import templates
from hpcplane.store.tables import job_templates


def test_template_fields_fit_their_columns() -> None:
    """CreateJobTemplate/EditJobTemplate text fields: max_length == String(n) of the column."""
    for wire, (column, width) in templates.TEXT_FIELDS.items():
        kind = job_templates.c[column].type
        assert isinstance(kind, String), wire
        assert kind.length == width, wire

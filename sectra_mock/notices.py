"""The mock's warnings, structured: each reads as its message (a ``str``) and carries what it is about.

``mock.warnings`` is a list of :class:`MockWarning`; comparing or searching one works as with the
plain strings it used to hold, and ``w.app_id``, ``w.slide_id``, ``w.result_id``, ``w.path`` and
``w.rule`` say which application, slide, stored result, JSON path and rule it concerns (None where it
is about none, e.g. a slide file that is not a slide). The viewer shows each result's warnings beside
it by ``result_id``, whether they came from its first ``POST`` or a later ``PUT``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MockWarning"]


class MockWarning(str):
    """A warning's text, with the application, slide, result, JSON path and rule it concerns."""

    app_id: str | None
    slide_id: str | None
    result_id: str | None
    path: str | None
    rule: str | None

    def __new__(
        cls, message: str, *, app_id: str | None = None, slide_id: str | None = None,
        result_id: str | int | None = None, path: str | None = None, rule: str | None = None,
    ) -> MockWarning:
        self = super().__new__(cls, message)
        self.app_id, self.slide_id, self.path, self.rule = app_id, slide_id, path, rule
        self.result_id = None if result_id is None else str(result_id)
        return self

    def about(self) -> dict[str, Any]:
        """The structured fields (and the message) as a dict, e.g. for JSON."""
        return {"message": str(self), "appId": self.app_id, "slideId": self.slide_id,
                "resultId": self.result_id, "path": self.path, "rule": self.rule}

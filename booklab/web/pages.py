"""What every blueprint answers with: an error as a page that says what to do, or as JSON
for the API and event streams (:func:`wants_json`)."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/build/")


def error_page(status: int, title: str, message: str, link: tuple[str, str] | None = None,
               ) -> tuple[Response | str, int]:
    """An error as JSON for the API and event streams, else as a page that says what to do
    (``link``: the (URL, label) of where to go next; else back to the projects)."""
    if wants_json():
        return jsonify({"error": message}), status
    return render_template("error.html", title=title, message=message, link=link), status

"""What every blueprint uses: the process's context the app keeps (:func:`context`), the web
tier's own address (:func:`web_base`), and what it answers with: an error as a page that says
what to do, or as JSON for the API and event streams (:func:`wants_json`)."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, render_template, request

from booklab.context import Context
from booklab.pipeline.routes.names import port_suffix


def context_of(app: Flask) -> Context:
    """The process's context (configuration, Redis, state stores) that the app factory gave ``app``."""
    return app.extensions["booklab"]


def context() -> Context:
    """The context of the app handling this request (:func:`context_of`)."""
    return context_of(current_app)


def web_base() -> str:
    """The web tier's public base URL: ``web/url``, else ``<scheme>://<fqdn>[:<port>]``."""
    config = context().config
    if config.web_url:
        return config.web_url.rstrip("/")
    return f"{config.routes_scheme}://{config.fqdn}{port_suffix(config)}"


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/build/")


def error_page(
    status: int,
    title: str,
    message: str,
    link: tuple[str, str] | None = None,
) -> tuple[Response | str, int]:
    """An error as JSON for the API and event streams, else as a page that says what to do
    (``link``: the (URL, label) of where to go next; else back to the projects)."""
    if wants_json():
        return jsonify({"error": message}), status
    return render_template("error.html", title=title, message=message, link=link), status

"""What the real-browser tests share: where their screenshots go, and the web tier served
behind Traefik with forward-auth, as in production."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def web_env(web_env, web_port, traefik):
    """The web tier at its own address (where Traefik's forward-auth asks, and sends browsers
    to log in), notebook URLs on Traefik's port."""
    return {**web_env, "BOOKLAB_WEB_URL": f"http://127.0.0.1:{web_port}", "BOOKLAB_ROUTES_PORT": str(traefik.port)}

"""HTTPS as production runs it: Traefik terminates TLS with the operator's certificate (here
a self-signed one), plain HTTP is redirected to HTTPS, notebooks are announced and served
at ``https://<slug>.<FQDN>``, and runners check new routes on a plain entrypoint of
Traefik's own on loopback."""

from __future__ import annotations

import pytest
import requests
import urllib3

from booklab import service
from tests.fixtures.pipeline import run_to_end


def over_tls(traefik, host: str, path: str, headers: dict[str, str], ca_file: str | None) -> urllib3.BaseHTTPResponse:
    """GET ``path`` from ``host`` at Traefik's HTTPS entrypoint, checking its certificate
    for ``host`` against ``ca_file`` (None: the system's authorities)."""
    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        traefik.tls_port,
        server_hostname=host,
        assert_hostname=host,
        ca_certs=ca_file,
        cert_reqs="CERT_REQUIRED",
        retries=False,
        timeout=10,
    )
    with pool:
        return pool.request("GET", path, headers={"Host": host, **headers}, redirect=False)


@pytest.mark.parametrize("publisher", ["docker", "redis"])
def test_a_notebook_is_served_over_https_and_plain_http_is_redirected(
    ctx, runners, tls_traefik, web_server, alice, project, publisher
):
    runners(1, **tls_traefik.runner_env(publisher, auth_url=web_server))
    request = service.request_deployment(ctx, project, "main", alice.token)
    ready = run_to_end(ctx, request.id)[-1]
    assert ready["phase"] == "ready", ready
    host = f"{ctx.slug(request.id)}.{ctx.config.fqdn}"
    assert ready["url"] == f"https://{host}:{tls_traefik.tls_port}/"

    owner = {"Authorization": f"Bearer {alice.token}"}
    answer = over_tls(tls_traefik, host, f"/api/status?token={ready['token']}", owner, str(tls_traefik.certificate))
    assert answer.status == 200, answer.data
    with pytest.raises(urllib3.exceptions.SSLError):  # the certificate is checked, not taken on trust
        over_tls(tls_traefik, host, "/api/status", owner, ca_file=None)

    plain = requests.get(
        f"{tls_traefik.entrypoint_url}/tree?x=1", headers={"Host": host}, allow_redirects=False, timeout=10
    )
    assert plain.status_code in (301, 308)
    assert plain.headers["Location"] == f"https://{host}:{tls_traefik.tls_port}/tree?x=1"

"""A run's whole log, downloaded by its owner from the API and printed by ``booklab logs``:
every line, secrets removed; nobody else's."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import requests

from booklab.phases import Phase
from booklab.state.deployment import Deployment
from tests.fixtures.pipeline import queue_run, take_run

TOKEN = "glpat-" + "Q" * 20


def test_the_owner_downloads_a_runs_whole_log_without_its_secrets(web_server, ctx, gitlab, alice, plain_project):
    dep = Deployment(plain_project, "main", alice.username)
    run = take_run(ctx, queue_run(ctx, dep).deployment)
    ctx.lifecycle.say(run, Phase.BUILDING, f"Step 1/2 : RUN curl -H 'PRIVATE-TOKEN: {TOKEN}' https://example.org")
    ctx.lifecycle.say(run, Phase.BUILDING, "Step 2/2 : done")
    url = f"{web_server}/api/deployments/{quote(dep.id, safe='')}/log"

    answer = requests.get(url, headers={"Authorization": f"Bearer {alice.token}"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    assert "Step 1/2 : RUN curl -H 'PRIVATE-TOKEN: [secret removed]' https://example.org\n" in answer.text
    assert "Step 2/2 : done\n" in answer.text and TOKEN not in answer.text
    assert answer.headers["Content-Disposition"] == 'attachment; filename="notebooks-main-run1-log.txt"'

    bob = gitlab.add_user("bob")
    assert requests.get(url, headers={"Authorization": f"Bearer {bob.token}"}, timeout=10).status_code == 404
    missing = requests.get(url, params={"run": 7}, headers={"Authorization": f"Bearer {alice.token}"}, timeout=10)
    assert missing.status_code == 404

    cli = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "logs", dep.id, "--run", "1"],
        env={**os.environ, "BOOKLAB_URL": web_server, "BOOKLAB_GITLAB_TOKEN": alice.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0 and cli.stdout == answer.text, cli.stderr

"""The stand-in's web pages for people (not the API): only GitLab's "new merge request"
page, ``/<path_with_namespace>/-/merge_requests/new?merge_request[source_branch]=...
&merge_request[target_branch]=...``, so that a link from Booklab lands somewhere in the
demo. No sign-in; an unknown project or branch gets 404. The ``/-/`` separator keeps it
apart from ``/<path>.git/...``, ``/api/v4`` and ``/oauth``, as on GitLab.
"""

from __future__ import annotations

from flask import Blueprint, render_template_string, request

from gitlab_standin.context import context

bp = Blueprint("web", __name__)

NEW_MERGE_REQUEST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>New merge request · {{ project }} · GitLab</title></head>
<body>
<h1>New merge request</h1>
<p>From <code id="source-branch">{{ source_branch }}</code> into <code id="target-branch">{{ target_branch }}</code>
of {{ project }}: {{ commits }} commit{{ "" if commits == 1 else "s" }}.</p>
</body></html>"""

NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not Found · GitLab</title></head>
<body><h1>404: Page not found</h1></body></html>"""


@bp.get("/<path:project_path>/-/merge_requests/new")
def new_merge_request(project_path: str) -> tuple[str, int]:
    """The target branch defaults to the project's default branch, as on GitLab."""
    ctx = context()
    project = ctx.store.project(project_path)
    if project is None or project.path_with_namespace != project_path:  # a path, never an id
        return NOT_FOUND, 404
    source = request.args.get("merge_request[source_branch]", "")
    target = request.args.get("merge_request[target_branch]") or project.default_branch
    branches = {b.name for b in ctx.repos.branches(project.path_with_namespace, project.default_branch)}
    if source not in branches or target not in branches:
        return NOT_FOUND, 404
    commits = ctx.repos.count_commits(project.path_with_namespace, source, target)
    return render_template_string(
        NEW_MERGE_REQUEST,
        project=project.path_with_namespace,
        source_branch=source,
        target_branch=target,
        commits=commits,
    ), 200

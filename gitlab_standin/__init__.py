"""A GitLab stand-in for Booklab's tests and local demo (never used in production).

It speaks the documented GitLab REST API v4 shapes Booklab relies on (OAuth2
authorization-code flow, ``/api/v4/user``, groups, projects, branches, deploy keys), serves git
over a real OpenSSH server that accepts exactly the deploy keys added through the API,
and over smart HTTP for ``oauth2:<token>`` clones. Start one with ``GitLabStandIn``.

Where GitLab is less kind than a simple fake, so is the stand-in, by default: OAuth access
tokens expire after 2 hours and a refresh revokes the old pair. The tests' switches, each a
method of ``GitLabStandIn``: ``advance_clock`` (hours pass for tokens and codes), ``revoke_oauth_access``,
``delay_deploy_keys``, ``forbid_key_type``, ``archive`` (pushes refused), ``protect_branches``,
``remove_project``, ``fail_next`` (5xx, slow answers), ``set_member`` (roles change),
``add_group`` (groups and subgroups whose members inherit downwards), ``set_group_member``.
"""

from gitlab_standin.server import GitLabStandIn

__all__ = ["GitLabStandIn"]

"""The errors Booklab raises: one small hierarchy, each message telling the user what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only
    from booklab.phases import Phase


class BooklabError(Exception):
    """Base of every error Booklab raises on purpose."""

    #: transient errors may be retried; the others fail the deployment at once
    transient = False
    #: seconds a retry must wait at least (GitLab's Retry-After)
    retry_after = 0.0


class ConfigError(BooklabError):
    """A setting is missing or invalid; raised at start-up."""


class GitLabError(BooklabError):
    """GitLab refused or could not answer a request."""


class GitLabUnavailable(GitLabError):
    """GitLab answered 5xx or did not answer: worth retrying."""

    transient = True


class GitLabRateLimited(GitLabUnavailable):
    """GitLab answered 429 (too many requests): worth retrying after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientScope(GitLabError):
    """GitLab refused the request because the token lacks a scope (403 ``insufficient_scope``)."""


class NotFound(GitLabError):
    """The project or branch does not exist, or the user cannot see it."""


class BranchNotFound(NotFound):
    """The project has no such branch."""


class SecretUnavailable(BooklabError):
    """A secret of a deployment (its deploy key, the user's token) expired before it was used, or
    another ``secret_key`` sealed it."""


class GitError(BooklabError):
    """git failed on this machine (creating a checkout, committing to it)."""


class CloneError(GitError):
    """git could not clone the project at the requested branch (or fetch from it, or push to it)."""


class CloneUnavailable(CloneError):
    """git could not reach GitLab (network error, 5xx): worth retrying."""

    transient = True


class DeployKeyNotAccepted(CloneError):
    """git over SSH was refused the deploy key ("Permission denied (publickey)"): a
    self-hosted GitLab may take a minute to accept a key just added."""


class PushRejected(CloneError):
    """GitLab refused to update a branch: it exists already, or moved since."""


class SaveError(BooklabError):
    """A notebook's changes could not be saved back to GitLab; the notebook keeps them."""


class BranchNamesTaken(SaveError):
    """Every branch name a save tried exists already (the names change each minute)."""

    transient = True


class BuildError(BooklabError):
    """repo2docker could not build the repository's image."""


class UnsafeCheckout(BooklabError):
    """The checkout holds a symbolic link that leads outside it: it is not built."""


class DockerUnavailable(BooklabError):
    """The Docker Engine did not answer or answered 5xx: worth retrying."""

    transient = True


class RegistryError(BooklabError):
    """The image registry (``images/registry``) did not answer, or refused: the image is built here, or not
    shared."""


class HubError(BooklabError):
    """The site's JupyterHub (``launch/target: jupyterhub``) refused, or did not answer: its words, never the
    request (which holds Booklab's token)."""


class LaunchError(BooklabError):
    """The notebook container did not start or did not answer in time."""


class RouteError(BooklabError):
    """Traefik did not serve a notebook's route in time."""


class DemoError(BooklabError):
    """The local demo (``make demo``) could not start a part, or a part stopped."""


class InvalidDeployment(BooklabError):
    """A deployment id, project path or branch name that cannot be valid."""


class UnknownDeployment(BooklabError):
    """No deployment with that id exists."""


class UnknownImage(BooklabError):
    """A runner host does not list that image of Booklab's."""


class NotRunning(BooklabError):
    """The deployment has no running notebook to act on."""


class NotAllowed(BooklabError):
    """The operator's access rules (``access/*``) do not let this user, or this project, in."""


class UnknownProfile(BooklabError):
    """A launch asked for a machine profile that ``profiles/list`` does not define."""


class LimitReached(BooklabError):
    """A new run would pass one of the operator's limits (``limits/*``): nothing was queued."""


class SlugTaken(BooklabError):
    """Another live deployment holds the host name a new deployment would be served at."""


class Moved(BooklabError):
    """The deployment was not in the run or phase a writer expected: nothing was written."""

    def __init__(self, deployment: str, number: int, wanted: str, phase: Phase | None, current: int | None) -> None:
        self.phase, self.current = phase, current
        super().__init__(
            f"{wanted} for run {number} of {deployment} was not written: it found "
            f"{phase.value if phase else 'no run'} in run {current}"
        )


class DeployKeyRefused(GitLabError):
    """GitLab refused to add a deploy key (the user is below Maintainer)."""


class TokenRejected(GitLabError):
    """GitLab no longer accepts the user's token (expired or revoked): log in again."""


class NoAccess(GitLabError):
    """GitLab refused a request for the user's role (403): they can see the project, say, but
    not read its code."""


class SettingsError(BooklabError):
    """The repository's ``.booklab.yml`` is invalid; the message says what to change."""


class ApiError(BooklabError):
    """The web tier refused a request, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

"""The errors Booklab raises: one small hierarchy, each message telling the user what to do."""


class BooklabError(Exception):
    """Base of every error Booklab raises on purpose."""

    #: transient errors may be retried; the others fail the deployment at once
    transient = False


class ConfigError(BooklabError):
    """A setting is missing or invalid; raised at start-up."""


class GitLabError(BooklabError):
    """GitLab refused or could not answer a request."""


class GitLabUnavailable(GitLabError):
    """GitLab answered 5xx or did not answer: worth retrying."""

    transient = True


class NotFound(GitLabError):
    """The project or branch does not exist, or the user cannot see it."""


class DeployKeyError(BooklabError):
    """The deploy key could not be provisioned or was not found when needed."""


class CloneError(BooklabError):
    """git could not clone the project at the requested branch (or fetch from it, or push to it)."""


class CloneUnavailable(CloneError):
    """git could not reach GitLab (network error, 5xx): worth retrying."""

    transient = True


class PushRejected(CloneError):
    """GitLab refused to update a branch: it exists already, or moved since."""


class SaveError(BooklabError):
    """A notebook's changes could not be saved back to GitLab; the notebook keeps them."""


class BuildError(BooklabError):
    """repo2docker could not build the repository's image."""


class UnsafeCheckout(BooklabError):
    """The checkout holds a symbolic link that leads outside it: it is not built."""


class DockerUnavailable(BooklabError):
    """The Docker Engine did not answer or answered 5xx: worth retrying."""

    transient = True


class LaunchError(BooklabError):
    """The notebook container did not start or did not answer in time."""


class RouteError(BooklabError):
    """Traefik did not serve a notebook's route in time."""


class DemoError(BooklabError):
    """The local demo (``make demo``) could not start a part, or a part stopped."""

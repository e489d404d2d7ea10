"""The one phase vocabulary, shared by the runner, Redis, the event stream and the pages,
and the states of a save back (:class:`SaveState`).

The event phases are BinderHub's; ``todo`` and ``stopped`` are statuses a deployment can
have without an event of that name being the reason, and ``stopping`` is Booklab's own: the
run is ending (on request, culled, failed), and a new request queues behind its end. Which
phase may follow which is :mod:`booklab.state.lifecycle`'s table.
"""

from enum import Enum


class Phase(str, Enum):
    TODO = "todo"
    WAITING = "waiting"
    FETCHING = "fetching"
    BUILDING = "building"
    BUILT = "built"
    LAUNCHING = "launching"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def status(self) -> "Phase":
        """The status an event of this phase gives its deployment: queued is ``todo``."""
        return Phase.TODO if self is Phase.WAITING else self

    @property
    def is_final(self) -> bool:
        """No event follows a final phase in the same run of a deployment."""
        return self in FINAL

    @property
    def is_active(self) -> bool:
        """Queued, being prepared, serving or ending: not over yet."""
        return self not in (Phase.FAILED, Phase.STOPPED)

    @property
    def is_joinable(self) -> bool:
        """Queued, being prepared or serving: a new request for it joins it (one for a
        run that is ending queues behind that end)."""
        return self.is_active and self is not Phase.STOPPING


FINAL = frozenset({Phase.READY, Phase.FAILED, Phase.STOPPED})


class SaveState(str, Enum):
    """The state of a notebook's last save back to GitLab (its record's ``save_state``, the
    API's ``save.state``)."""

    SAVING = "saving"
    SAVED = "saved"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    KEPT = "kept"
    """given up: the changes are kept for download (``booklab.saveback.kept``)"""

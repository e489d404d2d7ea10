"""The one phase vocabulary, shared by the runner, Redis, the event stream and the pages.

The event phases are BinderHub's; ``todo`` and ``stopped`` are statuses a deployment can
have without an event of that name being the reason.
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
        """Queued, being prepared or serving: a new request for it joins it."""
        return self not in (Phase.FAILED, Phase.STOPPED)


FINAL = frozenset({Phase.READY, Phase.FAILED, Phase.STOPPED})

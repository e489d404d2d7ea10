"""The Redis schema: every key Booklab reads or writes is named here, and only here, but for
the broker's queues (Celery's lists, named in :mod:`booklab.dispatch.queues`).

=====  ==========================  =====================================================
TYPE   key                         meaning
=====  ==========================  =====================================================
SET    runners                     runners declared
STR    heartbeat:<runner>          set by a live runner, expires after 30 s
HASH   runner:<runner>             the deployment and run a runner serves, and its container
HASH   runnerhost                  runner -> the host of its Docker Engine (``docker info``'s name)
HASH   status                      deployment -> its current run's phase (phases.Phase), until 7 days after its end;
                                   written only through booklab.state.lifecycle's checked moves
HASH   deployment:<deployment>     the current run: run, project, ref, user, commit, image, runner, url, ending, ...
STR    runseq:<deployment>         the number of the deployment's latest run (each launch is a new run)
HASH   nextrun:<deployment>        a run requested while the current one ends, queued behind that end
ZSET   queue                       deployments waiting for a runner, by arrival
ZSET   ended                       deployments that ended, by time; status forgets them 7 days after
LIST   log:<run>                   a run's events as JSON, oldest first, capped; 7 days (<run>: "<deployment>#<n>")
STR    logseq:<run>                how many events the run ever wrote (its last event id); 7 days
STR    fulllog:<run>               the text of every message of the run, up to 10 MB; log/retention after its last
PUBSUB events:<run>                each event of the run, "<id> <json>", for live readers
STR    saving:<deployment>         a save back is queued or running ("saving"), or failed ("failed")
HASH   kept:<deployment>           the changes of saves given up: run number -> JSON (when, size, why), with TTL
STR    keptfiles:<run>             those changes of one run, a gzipped tar in base64, with TTL
ZSET   keptby:<user>               the runs whose changes a user keeps, by time (the oldest go beyond 5)
STR    secret:<deployment>:<name>  an encrypted secret (private key, user token, Jupyter token), with TTL
STR    grant:<id>                  a user's GitLab OAuth login (encrypted token pair), shared by web tier and runners
STR    grantlock:<id>              held while one process refreshes that login, 30 s at most
ZSET   keysweep                    deploy keys to remove again, "<project id> <title>", by due time (or lease's end)
ZSET   keysweep:late               titles of deploy keys GitLab may add late, likewise
STR    taskrun:<task id>           a task message already ran (guards redelivery)
STR    reaping:<runner>            a live runner is cleaning up after this lost one
STR    websession:<sha256>         a web login session (encrypted JSON), with TTL
STR    slug:<slug>                 the live deployment served at <slug>.<fqdn>; gone when it ends
STR    notebookgrant:<sha256>      a one-use code that opens a notebook host, 60 s
STR    notebookpass:<sha256>       a notebook host's login (JSON), with TTL
STR    routecheck:<slug>           SHA-256 of the runner's pass through forward-auth to check a route
STR    ratelimit:<kind>:<client>:<window>  a client's requests of one kind in one window, with TTL
HASH   metrics:<name>              a duration histogram: le=<bucket> counts, sum, count
HASH   conf                        settings the web tier shares with runners
LIST   adminlog                    the operators' actions (JSON: at, operator, action, target), the last 1000
ZSET   imagelaunches               image name -> when a notebook of it last launched (or it was built), all hosts
SET    imagehosts:<image>          the hosts whose Docker Engine holds that image (placement), 7 days after its launch
HASH   imagelatest                 "<project>:<branch>" -> the image it launched last (placement); forgotten
                                   with that image's launches
ZSET   launchcount:<hour>      "<project>:<branch>" -> the users who launched it in that hour (hours since 1970),
                                   25 hours
SET    launchers:<hour>            "<project>:<branch> <user>" of each launch in that hour, 25 hours
HASH   imageinventory              host -> JSON of its Booklab images as its cleaner last saw them, and until when
SET    imageremovals:<host>        image names an operator asked to remove from that host's Docker Engine
HASH   imagesremoved               host -> how many images its cleaner ever removed
STR    imagecleaning:<host>        held while one runner of that host cleans its images, a few minutes at most
STR    registrypruning             held for images/clean_interval by the runner that deleted old tags of the registry
HASH   buildclaim:<image>          the launch building that image: run, runner, host; gone once it is built (and
                                   pushed, with a registry), or after build/timeout and a margin
HASH   spare:<runner>              the warm spare the runner holds: id, image, target, state (starting, offered,
                                   claimed), container, address, limits, sealed token, the run that claimed it
SET    spares:<image>              the runners offering a spare of that image to the next launch of it
HASH   sparecount                  image -> how many spares of it are starting or offered
STR    sparepause:<image>          no spare of that image starts: one ended or never answered, 5 minutes
STR    warmrefresh                 held for warm/refresh seconds by the runner that looked at the warm branches
=====  ==========================  =====================================================

Celery's broker keys (``deployments``, ``runner.<name>``, ``unacked*``, ``_kombu*``) live
beside these. The notebooks' routes that Traefik's Redis provider reads (``routes/publisher:
redis``, rootKey ``traefik``) live in a database of their own on the same server
(``routes/redis_db``, ``ctx.route_tree``): STR ``traefik/http/routers/<slug>/...``
and ``traefik/http/services/<slug>/...``, the forward-auth middleware of each route
(``traefik/http/middlewares/<slug>-auth/...``), and one unused middleware that is never
removed (:data:`TRAEFIK_ANCHOR`).
"""

RUNNERS = "runners"
RUNNER_HOSTS = "runnerhost"
STATUS = "status"
QUEUE = "queue"
ENDED = "ended"
KEY_SWEEP = "keysweep"
KEY_SWEEP_LATE = "keysweep:late"
CONF = "conf"
AUDIT_LOG = "adminlog"
IMAGE_LAUNCHES = "imagelaunches"
IMAGE_INVENTORY = "imageinventory"
IMAGES_REMOVED = "imagesremoved"
IMAGE_LATEST = "imagelatest"
REGISTRY_PRUNING = "registrypruning"
SPARE_COUNT = "sparecount"
WARM_REFRESH = "warmrefresh"

HEARTBEAT_TTL = 30
RECORD_TTL = 7 * 24 * 3600
TASKRUN_TTL = 7 * 24 * 3600


def heartbeat(runner: str) -> str:
    return f"heartbeat:{runner}"


def runner(runner: str) -> str:
    return f"runner:{runner}"


def image_hosts(image: str) -> str:
    """The hosts whose Docker Engine holds ``image``."""
    return f"imagehosts:{image}"


def deployment(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


def run_stream(deployment_id: str, number: int | str) -> str:
    """The name of one run of a deployment, in the keys of its log: ``<deployment>#<n>``
    (a deployment id ends with a user name, which holds no ``#``)."""
    return f"{deployment_id}#{number}"


def log(stream: str) -> str:
    return f"log:{stream}"


def full_log(stream: str) -> str:
    return f"fulllog:{stream}"


def logseq(stream: str) -> str:
    return f"logseq:{stream}"


def events(stream: str) -> str:
    return f"events:{stream}"


def runseq(deployment_id: str) -> str:
    return f"runseq:{deployment_id}"


def next_run(deployment_id: str) -> str:
    return f"nextrun:{deployment_id}"


def saving(deployment_id: str) -> str:
    return f"saving:{deployment_id}"


def kept(deployment_id: str) -> str:
    return f"kept:{deployment_id}"


def kept_files(stream: str) -> str:
    return f"keptfiles:{stream}"


def kept_by(user: str) -> str:
    return f"keptby:{user}"


def grant(grant_id: str) -> str:
    return f"grant:{grant_id}"


def grant_lock(grant_id: str) -> str:
    return f"grantlock:{grant_id}"


def secret(deployment_id: str, name: str) -> str:
    return f"secret:{deployment_id}:{name}"


def taskrun(task_id: str) -> str:
    return f"taskrun:{task_id}"


def websession(cookie_id_digest: str) -> str:
    """A web login session, encrypted, with TTL; keyed by the SHA-256 of the cookie's id."""
    return f"websession:{cookie_id_digest}"


def slug(slug_: str) -> str:
    """The deployment whose notebook is served at ``<slug>.<fqdn>`` (forward-auth's owner check),
    set when it is requested and removed when it ends; no other deployment takes it over."""
    return f"slug:{slug_}"


def notebook_grant(code_digest: str) -> str:
    """A one-use code the web tier hands a logged-in owner to open their notebook's host;
    keyed by the SHA-256 of the code."""
    return f"notebookgrant:{code_digest}"


def notebook_pass(cookie_digest: str) -> str:
    """The login of one notebook host (owner, slug, web session), keyed by the SHA-256 of its cookie."""
    return f"notebookpass:{cookie_digest}"


def route_check(slug_: str) -> str:
    """A random value the runner sends through forward-auth while it checks the new route."""
    return f"routecheck:{slug_}"


def rate_limit(kind: str, client: str, window: int) -> str:
    """How many requests of ``kind`` the web tier counted from ``client`` in the window numbered ``window``."""
    return f"ratelimit:{kind}:{client}:{window}"


def histogram(name: str) -> str:
    """A duration histogram every runner adds to: bucket counts, sum and count."""
    return f"metrics:{name}"


def reaping(runner_name: str) -> str:
    """Held by the runner that cleans up after a lost runner, so only one does."""
    return f"reaping:{runner_name}"


#: Traefik's KV providers ignore a tree that became empty and keep serving the last
#: route removed (traefik/traefik#8092); this key keeps the tree from ever being empty.
TRAEFIK_ANCHOR = "traefik/http/middlewares/booklab-anchor/headers/customResponseHeaders/X-Booklab"


def traefik_router(slug: str, name: str) -> str:
    """One setting of a notebook's Traefik router (rootKey ``traefik``)."""
    return f"traefik/http/routers/{slug}/{name}"


def traefik_service(slug: str, name: str) -> str:
    """One setting of a notebook's Traefik service (rootKey ``traefik``)."""
    return f"traefik/http/services/{slug}/{name}"


def traefik_middleware(name: str, setting: str) -> str:
    """One setting of a Traefik middleware (rootKey ``traefik``)."""
    return f"traefik/http/middlewares/{name}/{setting}"


def image_removals(host: str) -> str:
    """The images an operator asked to remove from the Docker Engine ``host``, which its runners' cleaner takes."""
    return f"imageremovals:{host}"


def image_cleaning(host: str) -> str:
    """Held by the one runner of the Docker Engine ``host`` that cleans its images."""
    return f"imagecleaning:{host}"


def build_claim(image: str) -> str:
    """Held by the one launch that builds ``image`` (across runners and hosts): the others wait for it."""
    return f"buildclaim:{image}"


def spare(runner: str) -> str:
    """The warm spare ``runner`` holds (:mod:`booklab.state.spares`)."""
    return f"spare:{runner}"


def spare_pause(image: str) -> str:
    """Set while no spare of ``image`` starts (:mod:`booklab.runner.warming`)."""
    return f"sparepause:{image}"


def spare_offers(image: str) -> str:
    """The runners whose spare of ``image`` a launch may claim."""
    return f"spares:{image}"


def launch_counts(hour: int) -> str:
    """The launches of each branch in ``hour`` (hours since 1970): warm/recent's ranking."""
    return f"launchcount:{hour}"


def launchers(hour: int) -> str:
    """Who launched which branch in ``hour``: each counts once in :func:`launch_counts`."""
    return f"launchers:{hour}"

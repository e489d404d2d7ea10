# Booklab's commands. `make test` installs what the tests need and runs them.
# `make demo` runs all of Booklab on this machine until Ctrl-C; optional:
#   RUNNERS=N (default 2), DEMO_PORT=P (Traefik's port, default 8000; 0: a free one),
#   HOSTS=N (default 1; more: N Docker hosts of their own on this machine, as root; see docs/SCALING.md),
#   HUB=1 (a JupyterHub beside Booklab, where notebooks open as the users' servers; see the README),
#   DEMO_REPOS=DIR (serve every git repository in DIR as the project demo/<its name>).
PYTHON ?= python3

.PHONY: deps test demo bench base-image runner-image

deps:
	scripts/install-deps.sh

base-image: deps
	images/base/build.sh

runner-image: deps
	workers/build.sh

test: deps
	$(PYTHON) -m tests.lanes

demo: deps
	$(PYTHON) -m booklab.demo $(if $(RUNNERS),--runners $(RUNNERS)) $(if $(HOSTS),--hosts $(HOSTS)) $(if $(HUB),--hub) $(if $(DEMO_PORT),--port $(DEMO_PORT)) \
		$(if $(DEMO_REPOS),--repos "$(DEMO_REPOS)")

# Benchmarks against the real local stack; writes BENCHMARKS.md. Optional: FIGURES="relaunch route"
# (some figures only), BENCH_ROUNDS=N (default 10; see python -m bench --help).
bench: deps
	$(PYTHON) -m bench $(FIGURES)

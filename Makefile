# Booklab's commands. `make test` installs what the tests need and runs them.
PYTHON ?= python3

.PHONY: deps test base-image runner-image

deps:
	scripts/install-deps.sh

base-image: deps
	images/base/build.sh

runner-image: deps
	workers/build.sh

test: deps
	$(PYTHON) -m pytest

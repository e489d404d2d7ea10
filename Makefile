# Booklab's commands. `make test` installs what the tests need and runs them.
PYTHON ?= python3

.PHONY: deps test base-image

deps:
	scripts/install-deps.sh

base-image: deps
	images/base/build.sh

test: deps
	$(PYTHON) -m pytest

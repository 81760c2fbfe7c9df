# LLaRA ROS 2 workspace. Everything installs into .venv; nothing outside the repo.
#   make setup   create .venv, install pinned deps, fix up the ROS wheels, colcon build
#   make test    setup + lint + every package's tests (colcon test) + tests/
#   make bench   benchmarks (print ratios against a baseline measured in the same run)
#   make vima    install VIMA-Bench into .venv (VIMA=<clone or .tar.xz>; default: the
#                archive in ../shared/vimabench/); leaves every pinned package as it is
#   make demo    the demo policy and the oracle through the sim graph: success table,
#                demo_out/ (demo.gif, success.png, results.json, the bag); options in
#                DEMO_ARGS, e.g. DEMO_ARGS='--episodes 3 --policy DIR' (see --help)
#   make clean   remove build/, install/, log/ (keeps .venv)
SHELL := /bin/bash
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: help setup test lint bench vima demo clean distclean
help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

setup:
	@bash tools/setup.sh

test: setup
	@bash tools/test.sh

lint: setup
	@source env.sh && ruff check src tests tools

bench: setup
	@bash tools/bench.sh

vima: setup
	@bash tools/install_vima.sh $(VIMA)

demo: setup
	@source env.sh && python -m llara_bringup.demo $(DEMO_ARGS)

clean:
	rm -rf build install log

distclean: clean
	rm -rf .venv

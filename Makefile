# ringstore: the two commands of the README, plus the developer's helpers.
#   make run    install missing Debian packages, build, start a local 3-node cluster, mount its
#               filesystem and serve a block volume
#   make test   install, build and pass the tests (unit, multi-process, FUSE mount, NBD, simulator seeds)
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps build test run stop status asan bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@scripts/run-tests.sh $(BUILD)

run: build
	@scripts/run-local.sh start $(BUILD)

stop:
	@scripts/run-local.sh stop $(BUILD)

status:
	@scripts/run-local.sh status $(BUILD)

# Address and undefined-behaviour sanitizers over the whole suite.
asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRINGSTORE_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@scripts/run-tests.sh $(ASAN_BUILD)

bench: build
	@BIN_DIR=$(abspath $(BUILD)) bench/node_bench.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

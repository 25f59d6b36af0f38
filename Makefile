# Thin wrapper around CMake; see README.md.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
FUZZ_TARGETS = config http args dict
CONFIG ?= etc/moonpool.yaml
JOBS ?= $(shell nproc)

.PHONY: all deps build run test asan test-asan fuzz-build fuzz fuzz-regress \
	bench clean

all: build

deps:
	@tools/deps.sh build run test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/moonpool -c $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j 2

# libFuzzer targets (tests/fuzz): clang, ASan and UBSan, in their own dir.
fuzz-build: deps
	@tools/deps.sh fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMP_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets

# Each target over its checked-in corpus once (what CI runs).
fuzz-regress: fuzz-build
	cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz

# A bounded fuzzing run, FUZZ_TIME seconds per target. New inputs go to
# $(FUZZ_BUILD)/corpus/<name> (the checked-in seeds are only read); crash
# reproducers land in $(FUZZ_BUILD)/crashes/.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/crashes
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		echo "== fuzz_$$t ($(FUZZ_TIME) s)"; \
		./$(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) \
			-rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t; \
	done

bench: build
	@tools/deps.sh bench
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# The two commands of the README.  Everything runs through tools/devenv, which
# sets up the build environment (natively or in a Debian 13 root) by itself.
DEVENV  ?= tools/devenv
# CLASS: an ImageNet index or a class name that the default pack draws.
CLASS   ?= 0
MODE    ?=
SEED    ?= 1
FUZZ_TIME ?= 600
FUZZ_TARGETS ?=

.PHONY: all demo check build clean test-packs fuzz

all: build

build:
	$(DEVENV) true

# Samples a picture with the default pack and writes demo.png.
demo:
	$(DEVENV) gfcg sample --class "$(CLASS)" $(if $(MODE),--mode $(MODE)) --seed $(SEED) \
	  --trace demo.json --out demo.png

# Builds and runs every test (meson test, plus the loader under ASan/UBSan).
check:
	$(DEVENV) tools/check

# Long libFuzzer runs (FUZZ_TIME seconds per target; FUZZ_TARGETS: some of
# safetensors pack png pickle zip tflite) on a corpus kept in build-fuzz/corpus-*; prints the
# executions.  Findings go to build-fuzz/artifacts-*/.
fuzz:
	GFCG_DEVENV_NOBUILD=1 $(DEVENV) tools/fuzz $(FUZZ_TIME) $(FUZZ_TARGETS)

# Tiny random packs (16x16, as the parity tests use) in build/test-packs/.
test-packs:
	GFCG_DEVENV_NOBUILD=1 $(DEVENV) python3 tests/reference/make_packs.py build/test-packs

clean:
	rm -rf build build-asan build-fuzz demo.png demo.json

# ferry - one Makefile.
#
#   make                      build bin/ferry-agent, bin/ferry-server,
#                             bin/ferry-convert, bin/ferry-prepare
#   make check                install test dependencies, build, run all tests
#   make demo                 run the main job on embedded defaults
#   make SANITIZE=address,undefined check
#                             the same tests on a sanitizer build
#                             (objects and binaries under build-sanitize/)
#   make check-tsan           the tests that run threads (server, clone
#                             pipeline, converter pool) on a ThreadSanitizer
#                             build (under build-tsan/)
#   make fuzz                 the libFuzzer harnesses of tests/fuzz/ (clang,
#                             ASan+UBSan, under build-fuzz/)
#   make check-fuzz           run each for FUZZ_SECONDS (default 30) on its
#                             seed corpus; a crash, leak or timeout fails
#   make bench                benchmarks against the peers (docs/PERFORMANCE.md)
#   make dashboard-screenshots the dashboard's pages into docs/dashboard/
#   make check-prepare-matrix guest preparation's whole boot proof
#                             (docs/PREPARATION.md)
#   make deb                  the ferry-agent Debian package in dist/
#                             (dist/ferry-agent.deb links to it; ansible/
#                             deploys it: docs/ANSIBLE.md)

PKGS := libcurl libmicrohttpd jansson openssl libarchive zlib libnbd \
        sqlite3 yaml-0.1 libzstd libdeflate

CC ?= cc
VERSION := 0.1.0

ifneq ($(FUZZ),)
# libFuzzer needs clang; the project's objects get coverage instrumentation
# (fuzzer-no-link), the harnesses link the fuzzer's main
O := build-fuzz
BIN := $(O)/bin
DIST := $(O)/dist
CC := clang
OPT := -O1 -fno-omit-frame-pointer \
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(SANITIZE),)
O := build
BIN := bin
DIST := dist
OPT := -O2
else
# ThreadSanitizer cannot share objects with ASan: a directory of its own
O := $(if $(findstring thread,$(SANITIZE)),build-tsan,build-sanitize)
BIN := $(O)/bin
DIST := $(O)/dist
OPT := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZE) \
       -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=$(SANITIZE)
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wvla -Wstrict-prototypes -Werror
CFLAGS ?= -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DFERRY_VERSION='"$(VERSION)"' \
              $(WARN) $(OPT) $(CFLAGS) -pthread -MMD -MP \
              -Ilib -Iconverters $(PKG_CFLAGS)
ALL_LDFLAGS := -pthread $(SAN_LDFLAGS) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm

LIB_SRC := $(wildcard lib/*/*.c)
AGENT_SRC := $(wildcard agent/*.c)
SERVER_SRC := $(wildcard server/*.c server/targets/*.c)
CONVERT_SRC := $(wildcard converters/*.c converters/formats/*.c)
CLI_SRC := $(wildcard cli/*.c)
# guest preparation alone links libguestfs (the agent never does)
PREPARE_SRC := $(wildcard prepare/*.c)
GUESTFS_LIBS = $(shell pkg-config --libs libguestfs 2>/dev/null || echo -lguestfs)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(O)/%.o,$(1))

LIBFERRY := $(O)/libferry.a
PROGRAMS := $(BIN)/ferry-agent $(BIN)/ferry-server $(BIN)/ferry-convert \
            $(BIN)/ferry-prepare \
            $(BIN)/ferry
UNIT_TESTS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))

.PHONY: all clean check check-tsan check-unit check-shell demo bench deps \
        dashboard-screenshots \
        deps-build checksrc unit deb fuzz fuzzers check-fuzz \
        check-prepare-matrix check-boot-matrix

all: $(PROGRAMS)

V ?= 0
ifeq ($(V),0)
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
else
Q :=
say :=
endif

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBFERRY): $(call obj,$(LIB_SRC))
	@rm -f $@
	$(call say,AR,$@)$(AR) rcs $@ $^

$(BIN)/ferry-agent: $(call obj,$(AGENT_SRC)) $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/ferry-server: $(call obj,$(SERVER_SRC)) $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/ferry-convert: $(call obj,$(CONVERT_SRC)) $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/ferry-prepare: $(call obj,$(PREPARE_SRC)) $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(GUESTFS_LIBS) $(LIBS)

$(BIN)/ferry: $(call obj,$(CLI_SRC)) $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# A unit test links the library and, where it tests a program's own code,
# that program's objects (named in tests/unit/<test>.deps).
$(O)/tests/%: tests/unit/%.c $(LIBFERRY) \
              $(call obj,$(filter-out %/main.c,$(CONVERT_SRC) $(AGENT_SRC)))
	@mkdir -p $(dir $@)
	$(call say,TEST,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Itests/unit -Iagent -o $@ $< \
	  $(call obj,$(filter-out %/main.c,$(CONVERT_SRC) $(AGENT_SRC))) \
	  $(LIBFERRY) $(LIBS)

# Helpers the shell tests drive (not run as unit tests).
TEST_TOOLS := $(O)/tests/store-tool $(O)/tests/nbd-serve $(O)/tests/fleet

$(O)/tests/store-tool: tests/tools/store_tool.c $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,TOOL,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
	  $(LIBFERRY) $(LIBS)

$(O)/tests/nbd-serve: tests/tools/nbd_serve.c $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,TOOL,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
	  $(LIBFERRY) $(LIBS)

# simulated agents for the control plane's load test (bench/fleet.sh)
$(O)/tests/fleet: tests/tools/fleet.c
	@mkdir -p $(dir $@)
	$(call say,TOOL,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIBS)

# Benchmark programs that bench/*.sh run; built with the unit tests so
# that they keep compiling.
BENCH_TOOLS := $(O)/bench/sha256-bench

$(O)/bench/sha256-bench: bench/sha256_bench.c $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,TOOL,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
	  $(LIBFERRY) $(LIBS)

unit: $(UNIT_TESTS) $(TEST_TOOLS) $(BENCH_TOOLS)

ARCH = $(shell dpkg --print-architecture)
deb: $(BIN)/ferry-agent
	$(call say,DEB,$(DIST)/ferry-agent_$(VERSION)_$(ARCH).deb)bash packaging/build-deb.sh $< $(DIST) $(VERSION) >/dev/null
	@ln -sfn ferry-agent_$(VERSION)_$(ARCH).deb $(DIST)/ferry-agent.deb

deps-build:
	@bash scripts/setup.sh build

deps:
	@bash scripts/setup.sh test

checksrc:
	@bash scripts/checksrc.sh

# The sanitizer pass leaves out the tests whose minutes are spent in qemu
# booting guests (t-boot, t-bootmodels, t-prepare, t-warmprepare), in
# libguestfs' appliance building test guests and rebuilding initramfs
# images (t-guest-rhel, t-prepare) and in debootstrap and Ansible
# (t-ansible): the normal pass runs them; the C they drive (the local
# target's boot check, conversions, guest preparation, warm jobs, the
# agent's discovery and clone) runs under the sanitizers in t-bootcheck,
# t-prepare-basic, t-warmjob, t-formats, t-control and the others.
# Shell tests run two at a time (tests/run.sh; a test marked
# "# ferry-test-alone" runs with nothing beside it); TEST_JOBS=1 runs them
# one by one.
TEST_JOBS ?= 2
SANITIZE_EXCLUDE := $(if $(SANITIZE),t-boot t-ansible t-prepare t-bootmodels \
                      t-guest-rhel t-warmprepare)
check: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory checksrc
	@FERRY_BIN=$(abspath $(BIN)) FERRY_UNIT=$(abspath $(O)/tests) FERRY_TEST_JOBS=$(TEST_JOBS) \
	  FERRY_TEST_EXCLUDE="$(SANITIZE_EXCLUDE)" bash tests/run.sh

# The tests that run threads, on a ThreadSanitizer build: the unit tests
# (clone pipeline, converter pool, multi-buffer hashing) and the shell
# tests that drive ferry-server's request threads, orchestrator and
# workers with agents and conversions.  A race fails the run.
TSAN_TESTS := unit/ t-server t-control t-warm t-blueprint t-bootcheck t-steps t-lease \
              t-roundtrip t-resume t-convert-errors t-grants t-projects t-metrics \
              t-stream t-fleet
check-tsan: deps
	@$(MAKE) --no-print-directory SANITIZE=thread all unit
	@FERRY_BIN=$(abspath build-tsan/bin) FERRY_UNIT=$(abspath build-tsan/tests) FERRY_TEST_JOBS=$(TEST_JOBS) \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 suppressions=$(abspath tests/tsan.supp) $$TSAN_OPTIONS" \
	  bash tests/run.sh $(TSAN_TESTS)

# Fuzzing (docs/TESTING.md, "Fuzzing"): one harness per parser of outside
# input, tests/fuzz/fuzz_*.c; the server's objects come from an archive so
# that a harness links only what it calls.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS := $(patsubst tests/fuzz/%.c,build-fuzz/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 30

# the dashboard's files are embedded by .incbin (server/api_ui.c), which
# -MMD does not see
$(O)/server/api_ui.o: $(wildcard server/ui/*)

$(O)/libferry-server.a: $(call obj,$(filter-out server/main.c,$(SERVER_SRC)))
	@rm -f $@
	$(call say,AR,$@)$(AR) rcs $@ $^

$(O)/fuzz/%: tests/fuzz/%.c $(O)/libferry-server.a $(LIBFERRY)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Iserver \
	  -Itests/fuzz -o $@ $< $(O)/libferry-server.a $(LIBFERRY) \
	  $(ALL_LDFLAGS) -fsanitize=fuzzer $(LIBS)

fuzzers: $(FUZZERS)

fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 fuzzers

check-fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzzers
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh build-fuzz/fuzz

# Guest preparation's whole boot proof (docs/PREPARATION.md, "Measured"):
# both test guests prepared for every target and booted on its device
# model, and unprepared where that must fail; CI runs t-prepare's subset.
check-prepare-matrix: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BIN=$(abspath $(BIN)) bash tests/prepare-matrix.sh

# Every format booted (t-boot with all six; CI boots four of them).
check-boot-matrix: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BIN=$(abspath $(BIN)) FERRY_TEST_VERBOSE=1 \
	  FERRY_BOOT_FORMATS="raw vhd vhd-dynamic vmdk qcow2 gce" bash tests/run.sh t-boot

# The dashboard's screenshots in docs/dashboard/ (docs/DASHBOARD.md),
# taken by the browser test against a server mid-migration.
dashboard-screenshots: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BIN=$(abspath $(BIN)) FERRY_DASHBOARD_SHOTS=$(CURDIR)/docs/dashboard \
	  bash tests/run.sh t-dashboard

demo:
	@bash scripts/setup.sh demo
	@$(MAKE) --no-print-directory all
	@FERRY_BIN=$(abspath $(BIN)) bash scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@FERRY_BIN=$(abspath $(BIN)) bash bench/run.sh

clean:
	rm -rf build build-sanitize build-tsan build-fuzz bin dist

-include $(shell find $(O) -name '*.d' 2>/dev/null)

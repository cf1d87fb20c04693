# framecast build. `make` builds the three programs and libframecast.a into build/.
# `make check` installs Debian deps, builds, runs unit and integration tests.
# SAN=1 builds everything into build-san/ with AddressSanitizer and UBSan.

CC      ?= cc
PKGS    := msgpack libsodium libmpg123 libcurl jansson faad2 openssl sqlite3 libpq libxml-2.0
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
OPT     ?= -O2 -g
ifeq ($(SAN),1)
BUILD   ?= build-san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(CSTD) $(WARN) $(OPT) $(PKG_CFLAGS) -Ishared -MMD -MP
LDLIBS  := $(PKG_LIBS) -lev -lhttp_parser -lm
LDFLAGS += $(LDSAN)

LIB_SRC   := $(sort $(wildcard shared/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libframecast.a
SHIM_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard encoder-shim/*.c)))
RELAY_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard relay/*.c)))
EDGE_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard edge/*.c edge/core/*.c edge/http/*.c edge/analytics/*.c)))
PROGS     := $(BUILD)/framecast-shim $(BUILD)/framecast-relay $(BUILD)/framecast-edge
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all deps check unit integration san-unit fuzz demo bench format clean install uninstall
all: $(LIB) $(PROGS) $(TOOL_BIN)

deps:
	bash scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/framecast-shim: $(SHIM_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/framecast-relay: $(RELAY_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/framecast-edge: $(EDGE_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests may #include a module's .c to reach statics, so they link against the library
# with --allow-multiple-definition to let the included copy win.
$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka -Wl,--allow-multiple-definition

$(BUILD)/tools/%: tests/tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

unit: $(UNIT_BIN)
	@set -e; pass=0; fail=0; for t in $(UNIT_BIN); do \
	  if $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; done; \
	  echo "unit: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

san-unit:
	$(MAKE) SAN=1 unit

integration: all
	bash tests/integration/run-all.sh

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

# libFuzzer targets (clang, ASan + UBSan, any UB is a crash): build/fuzz/fuzz_<parser>, run one
# after another. `make fuzz FUZZ_SECONDS=30` runs each for 30 s; FUZZ_RUNS=N stops each after N
# inputs (FUZZ_SECONDS=0 FUZZ_RUNS=10000000: exactly 10 M each); FUZZ_ONLY="fuzz_icy ..." picks.
# Each starts from its corpus in the repository, tests/fuzz/corpus/<target>/ (only read), and
# writes new inputs to build/fuzz/corpus-<target>/; log build/fuzz/<target>.log, crashing input
# build/fuzz/<target>-crash-*. Fold a long run's finds into the repository (keep it small):
#   build/fuzz/fuzz_X -merge=1 tests/fuzz/corpus/fuzz_X build/fuzz/corpus-fuzz_X
FUZZ_SECONDS ?= 10
FUZZ_RUNS    ?= -1
FUZZ_ONLY    ?=
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_RUN_SRC := $(if $(FUZZ_ONLY),$(filter $(FUZZ_ONLY:%=tests/fuzz/%.c),$(FUZZ_SRC)),$(FUZZ_SRC))
fuzz:
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_RUN_SRC); do n=$$(basename $$f .c); \
	  clang $(CSTD) $(FUZZ_CFLAGS) -Ishared $(PKG_CFLAGS) -o build/fuzz/$$n $$f $(LIB_SRC) \
	    $(PKG_LIBS) -lev -lhttp_parser -lm -Wl,--allow-multiple-definition; \
	  mkdir -p build/fuzz/corpus-$$n tests/fuzz/corpus/$$n; \
	  if build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) -print_final_stats=1 \
	      -artifact_prefix=build/fuzz/$$n- build/fuzz/corpus-$$n tests/fuzz/corpus/$$n \
	      >build/fuzz/$$n.log 2>&1; then \
	    echo "fuzz $$n: ok execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$$n.log)" \
	      "exec/s=$$(sed -n 's/^stat::average_exec_per_sec: *//p' build/fuzz/$$n.log)"; \
	  else echo "fuzz $$n: FAILED (build/fuzz/$$n.log)"; \
	    grep -E 'ERROR|check failed|SUMMARY|Test unit written' build/fuzz/$$n.log | head -5; \
	    exit 1; fi; done

BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

# Benchmarks, like unit tests, may #include the module they measure; they link the library.
# Run them from a plain build (not SAN=1): sanitizer shadow memory would distort RSS figures.
$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -Wl,--allow-multiple-definition

.PHONY: bench-rewind
bench-rewind: $(BUILD)/bench/bench_rewind
	$(BUILD)/bench/bench_rewind

# Relay cost (issue 9, docs/architecture.md §4): verified, deduplicated frames per relay
# CPU-second to 2 subscribers, 500 mounts, 1,000,000 frames, TCP and UDP ingest (one line each).
.PHONY: bench-relay
bench-relay: $(BUILD)/framecast-relay $(BUILD)/bench/bench_relay
	FC_BUILD=$(abspath $(BUILD)) bash tests/bench/bench_relay.sh

# Measuring instruments (issue 9): the load client, the fan-out floor and the latency probe.
# Standalone programs (no library), always optimized, even under SAN=1.
BENCH_TOOLS := $(BUILD)/bench/listener-load $(BUILD)/bench/fanout-floor $(BUILD)/bench/latency-probe
$(BENCH_TOOLS): $(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -g -o $@ $< -lssl -lcrypto

# Listener fan-out beside icecast2 (issue 9, docs/architecture.md §9.4), icecast2 and the edge fed
# from it in one run, same load client: CPU µs and writes per listener-second, TTFB p50/p99, RSS
# per listener, ratio edge/icecast2; also ?offset=12 and fanout-floor at the edge's write cadence.
# `make bench-fanout N=10000 RAMP=10000`. One line per variant; FAIL if a listener was not served.
N    ?= 2000
RAMP ?= 1000
TLS  ?= 0
.PHONY: bench-fanout
bench-fanout: all $(BENCH_TOOLS)
	FC_BUILD=$(abspath $(BUILD)) TLS=$(TLS) bash tests/bench/bench_fanout.sh $(N) $(RAMP)

# Every core (issue 9): the edge's fan-out in one process (--workers 0) and with 1 and 2 workers,
# CPU and memory (Pss) summed over all of its processes; one line each. Then the memory of an
# edge holding an hour of audio at 0, 1 and 2 workers, each worker having sent all of it.
.PHONY: bench-workers
bench-workers: all $(BENCH_TOOLS)
	@rc=0; for w in 0 1 2; do EDGE_WORKERS=$$w ONLY=edge FC_BUILD=$(abspath $(BUILD)) \
	  bash tests/bench/bench_fanout.sh $(N) $(RAMP) || rc=1; done; \
	FC_BUILD=$(abspath $(BUILD)) bash tests/bench/bench_workers_mem.sh 1 || rc=1; exit $$rc

# Latency: shim read -> edge buffer, and edge listener vs a listener on the same icecast2 mount.
.PHONY: bench-latency
bench-latency: all $(BENCH_TOOLS)
	FC_BUILD=$(abspath $(BUILD)) bash tests/bench/bench_latency.sh

# Handoff restart (issue 10): the pause of N listeners while an edge holding an hour of audio is
# handed to a successor, and its memory before and after (one line).
.PHONY: bench-handoff
bench-handoff: all $(BENCH_TOOLS)
	FC_BUILD=$(abspath $(BUILD)) bash tests/bench/bench_handoff.sh $(N) 1

# Analytics store at station scale (§7.13): a month of sessions (AN_DAYS x AN_PER_DAY) written
# through the store into SQLite and PostgreSQL (an unprivileged cluster in a temp dir), then
# figures latency (day/900, week/3600, month/86400; all mounts and one), the NDJSON export of a
# day, size on disk; cross-checked against an_month.py's own computation. One line per figure.
AN_DAYS    ?= 30
AN_PER_DAY ?= 20000
.PHONY: bench-analytics
bench-analytics: $(BUILD)/bench/bench_analytics
	FC_BUILD=$(abspath $(BUILD)) bash tests/bench/bench_analytics.sh $(AN_DAYS) $(AN_PER_DAY)

# One after another (never in parallel: they measure CPU); all run, the status says if any failed.
bench:
	@rc=0; for t in bench-rewind bench-relay bench-fanout bench-workers bench-latency bench-handoff bench-analytics; do \
	  $(MAKE) --no-print-directory $$t || rc=1; done; exit $$rc

# Soak (tests/soak/soak.sh): 500 churning listeners, the primary encoder flapping, relays killed
# and restarted; RSS and fds of the long-lived processes flat within 5 %, lost=0. Not in `check`.
SOAK_S ?= 1800
.PHONY: soak
soak: all
	@mkdir -p $(BUILD)/soak
	$(CC) $(CSTD) $(WARN) $(OPT) -o $(BUILD)/soak/churn tests/soak/churn.c
	FC_BUILD=$(abspath $(BUILD)) bash tests/soak/soak.sh $(SOAK_S)

demo: deps
	$(MAKE) all
	bash scripts/demo.sh

format:
	clang-format -i shared/*.[ch] relay/*.[ch] edge/*.[ch] edge/*/*.[ch] encoder-shim/*.[ch] tests/*/*.c

clean:
	rm -rf build build-san

# `make install PREFIX=/usr/local DESTDIR=`: the programs (and scripts/keygen.sh as
# framecast-keygen, scripts/framecast-handoff for the units' ExecReload=) in $(PREFIX)/bin, the
# web player in $(PREFIX)/share/framecast/web (hls.js too when scripts/install-deps.sh has
# fetched it), the systemd units and the sysusers.d entry
# of the `framecast` user, and an example config per program in /etc/framecast (never
# overwritten: an existing file is kept). PREFIX=/usr puts the units in /lib/systemd/system
# (Debian 12); SYSTEMD_UNITDIR= overrides. `make uninstall` removes all of it, but keeps a
# config that differs from the example (and the mesh key).
PREFIX      ?= /usr/local
BINDIR      := $(PREFIX)/bin
PKGDATADIR  := $(PREFIX)/share/framecast
WEBDIR      := $(PKGDATADIR)/web
SYSCONFDIR  := /etc/framecast
SYSTEMD_UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
WEB_FILES   := web/index.html web/player.css web/player.js web/ops.html web/ops.js
HLSJS       := vendor/node_modules/hls.js/dist/hls.min.js
UPLOT       := vendor/node_modules/uplot/dist/uPlot.iife.min.js vendor/node_modules/uplot/dist/uPlot.min.css
UNITS       := framecast-edge.service framecast-relay.service framecast-shim@.service
CONFIGS     := edge.json relay.json shim.json
SUBST       := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@PKGDATADIR@|$(PKGDATADIR)|g'

install: $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(WEBDIR) $(DESTDIR)$(SYSTEMD_UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 755 scripts/keygen.sh $(DESTDIR)$(BINDIR)/framecast-keygen
	install -m 755 scripts/framecast-handoff $(DESTDIR)$(BINDIR)/framecast-handoff
	install -m 644 $(WEB_FILES) $(DESTDIR)$(WEBDIR)/
	@if [ -f web/$(HLSJS) ]; then \
	  echo "install -D -m 644 web/$(HLSJS) $(DESTDIR)$(WEBDIR)/$(HLSJS)"; \
	  install -D -m 644 web/$(HLSJS) $(DESTDIR)$(WEBDIR)/$(HLSJS); \
	else echo "install: web/$(HLSJS) missing (scripts/install-deps.sh fetches it):" \
	  "the player will offer no HLS outside Safari"; fi
	@for f in $(UPLOT); do if [ -f web/$$f ]; then \
	  echo "install -D -m 644 web/$$f $(DESTDIR)$(WEBDIR)/$$f"; \
	  install -D -m 644 web/$$f $(DESTDIR)$(WEBDIR)/$$f; \
	else echo "install: web/$$f missing (scripts/install-deps.sh fetches it): no charts at /ops"; fi; done
	@set -e; for u in $(UNITS); do \
	  echo "install scripts/systemd/$$u -> $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u"; \
	  $(SUBST) scripts/systemd/$$u >$(DESTDIR)$(SYSTEMD_UNITDIR)/$$u; \
	  chmod 644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u; done
	install -m 644 scripts/systemd/framecast.sysusers $(DESTDIR)$(SYSUSERSDIR)/framecast.conf
	@set -e; for c in $(CONFIGS); do f=$(DESTDIR)$(SYSCONFDIR)/$$c; \
	  if [ -e $$f ]; then echo "install: $$f exists, kept"; continue; fi; \
	  echo "install scripts/config/$$c -> $$f"; \
	  $(SUBST) scripts/config/$$c >$$f; chmod 644 $$f; done

uninstall:
	rm -f $(PROGS:$(BUILD)/%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(BINDIR)/framecast-keygen \
	  $(DESTDIR)$(BINDIR)/framecast-handoff
	rm -rf $(DESTDIR)$(PKGDATADIR)
	rm -f $(UNITS:%=$(DESTDIR)$(SYSTEMD_UNITDIR)/%) $(DESTDIR)$(SYSUSERSDIR)/framecast.conf
	@for c in $(CONFIGS); do f=$(DESTDIR)$(SYSCONFDIR)/$$c; [ -e $$f ] || continue; \
	  if $(SUBST) scripts/config/$$c | cmp -s - $$f; then rm -f $$f; \
	  else echo "uninstall: $$f differs from the example, kept"; fi; done
	-@rmdir $(DESTDIR)$(SYSCONFDIR) 2>/dev/null || true

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

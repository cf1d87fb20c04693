# framecast build. `make` builds the three programs and libframecast.a into build/.
# `make check` installs Debian deps, builds, runs unit and integration tests.
# SAN=1 builds everything into build-san/ with AddressSanitizer and UBSan.

CC      ?= cc
PKGS    := msgpack libsodium libmpg123 libcurl jansson faad2
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
EDGE_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard edge/*.c)))
PROGS     := $(BUILD)/framecast-shim $(BUILD)/framecast-relay $(BUILD)/framecast-edge
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all deps check unit integration san-unit fuzz demo bench format clean
all: $(LIB) $(PROGS) $(TOOL_BIN)

deps:
	bash scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

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

# libFuzzer targets (clang): build/fuzz/fuzz_<parser>; `make fuzz FUZZ_SECONDS=30` runs each.
FUZZ_SECONDS ?= 10
fuzz:
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined -Ishared $(PKG_CFLAGS) \
	    -o build/fuzz/$$n $$f $(LIB_SRC) $(PKG_LIBS) -lev -lhttp_parser -lm; \
	  mkdir -p build/fuzz/corpus-$$n; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$n >/dev/null 2>&1 \
	    && echo "fuzz $$n: ok" || { echo "fuzz $$n: FAILED"; exit 1; }; done

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

# Listener fan-out beside icecast2 (DESIGN.md §7): CPU per listener-second, time to first audio.
.PHONY: bench-fanout
bench-fanout: all
	bash tests/bench/bench_fanout.sh $(BENCH_LISTENERS) $(BENCH_SECONDS)
BENCH_LISTENERS ?= 1000
BENCH_SECONDS ?= 20

bench: bench-rewind bench-fanout

demo: deps
	$(MAKE) all
	bash scripts/demo.sh

format:
	clang-format -i shared/*.[ch] relay/*.[ch] edge/*.[ch] encoder-shim/*.[ch] tests/*/*.c

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

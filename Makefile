# lyceumd. `make` builds build/lyceumd; `make run` serves the demo on 127.0.0.1:8000;
# `make test` runs every test against a sanitizer build. See README.md.

PKGS     := libmicrohttpd jansson sqlite3 libjwt libargon2 liboath libcrypto
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-missing-field-initializers -Isrc -Ibuild/gen
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

SRC      := $(sort $(wildcard src/*.c src/*/*.c))
LIB_SRC  := $(filter-out src/main.c,$(SRC))
MIGRATIONS := $(sort $(wildcard src/store/migrations/*.sql))
GEN      := build/gen/migrations.c
HDRS     := $(wildcard src/*/*.h)

OBJ      := $(patsubst src/%.c,build/obj/%.o,$(SRC)) build/obj/gen/migrations.o
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TOBJ     := $(patsubst src/%.c,build/test/obj/%.o,$(SRC)) build/test/obj/gen/migrations.o
TLIB_OBJ := $(filter-out build/test/obj/main.o,$(TOBJ))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,build/test/unit/%,$(UNIT_SRC))

.PHONY: all deps run test unit e2e fuzz format format-check bench clean

all: build/lyceumd

deps:
	@sh scripts/deps.sh

$(GEN): $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-sql.sh $@ $(MIGRATIONS)

build/obj/%.o: src/%.c $(HDRS) | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -c $< -o $@

build/obj/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -c $< -o $@

build/lyceumd: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

# The test build: AddressSanitizer and UndefinedBehaviorSanitizer, no optimisation surprises.
build/test/obj/%.o: src/%.c $(HDRS) | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) $(PKG_CFLAGS) -c $< -o $@

build/test/obj/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -c $< -o $@

build/test/lyceumd: $(TOBJ)
	$(CC) -g $(SAN) -o $@ $^ $(PKG_LIBS)

build/test/unit/%: tests/unit/%.c $(TLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) $(PKG_CFLAGS) -o $@ $< $(TLIB_OBJ) $(PKG_LIBS) -lcmocka

# The fuzz target: clang's libFuzzer over the router, the dispatcher and the JSON bodies.
FUZZ_SRC := $(LIB_SRC) $(GEN) tests/fuzz/fuzz_api.c
build/fuzz/fuzz_api: $(FUZZ_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined $(WARN) $(PKG_CFLAGS) -o $@ \
		$(FUZZ_SRC) $(PKG_LIBS)

run: deps build/lyceumd
	./build/lyceumd serve --listen 127.0.0.1:8000 --data ./var --demo

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

e2e: build/test/lyceumd
	LYCEUMD_BIN=$(CURDIR)/build/test/lyceumd /usr/bin/python3 -m pytest -q tests/e2e

fuzz: build/fuzz/fuzz_api
	sh tests/fuzz/run.sh build/fuzz/fuzz_api

format:
	clang-format -i $(SRC) $(HDRS) $(UNIT_SRC) tests/fuzz/*.c

format-check:
	clang-format --dry-run -Werror $(SRC) $(HDRS) $(UNIT_SRC) tests/fuzz/*.c

test: deps
	$(MAKE) format-check
	$(MAKE) build/lyceumd build/test/lyceumd
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) e2e

bench: deps build/lyceumd
	sh bench/http.sh

clean:
	rm -rf build

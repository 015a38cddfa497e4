# lyceumd. `make` builds build/lyceumd; `make run` serves the demo on 127.0.0.1:8000;
# `make test` runs every test against a sanitizer build. See README.md.

# B: the build directory (a second checkout's parallel builds can use another).
B        ?= build
PKGS     := libmicrohttpd jansson sqlite3 libjwt libargon2 liboath libcrypto libcurl libseccomp libacl yaml-0.1 libarchive libsystemd
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-missing-field-initializers -Isrc -I$(B)/gen
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread

SRC      := $(sort $(wildcard src/*.c src/*/*.c))
LIB_SRC  := $(filter-out src/main.c,$(SRC))
MIGRATIONS := $(sort $(wildcard src/store/migrations/*.sql))
GEN      := $(B)/gen/migrations.c
# The web console (console/): npm ci once (node_modules is kept: offline after that), esbuild
# builds console/dist, and scripts/embed-console.sh embeds it in the binary.
CONSOLE_SRC := $(sort $(shell find console/src -type f 2>/dev/null)) console/build.mjs \
               console/package.json
CONSOLE_GEN := $(B)/gen/console_files.c
HDRS     := $(wildcard src/*/*.h)

OBJ      := $(patsubst src/%.c,$(B)/obj/%.o,$(SRC)) $(B)/obj/gen/migrations.o \
            $(B)/obj/gen/console_files.o
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TOBJ     := $(patsubst src/%.c,$(B)/test/obj/%.o,$(SRC)) $(B)/test/obj/gen/migrations.o \
            $(B)/test/obj/gen/console_files.o
TLIB_OBJ := $(filter-out $(B)/test/obj/main.o,$(TOBJ))
LIB_OBJ  := $(filter-out $(B)/obj/main.o,$(OBJ))
# Unit tests mirror src/: tests/unit/<dir>/test_x.c tests src/<dir>/; each builds to
# $(B)/test/unit/test_x.
UNIT_SRC := $(sort $(wildcard tests/unit/*/*.c))
UNIT_BIN := $(patsubst %.c,$(B)/test/unit/%,$(notdir $(UNIT_SRC)))
vpath test_%.c $(sort $(dir $(UNIT_SRC)))

.PHONY: all deps deps-serve run test unit e2e docker-driver tiny-llm fuzz format format-check bench clean mutants deb

all: $(B)/lyceumd

# What serving needs (make run), and that with what the tests need (make test).
deps-serve:
	@sh scripts/deps.sh serve

deps:
	@sh scripts/deps.sh test

$(GEN): $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-sql.sh $@ $(MIGRATIONS)

console/node_modules/.package-lock.json: console/package-lock.json
	cd console && npm ci --no-audit --no-fund --prefer-offline

console/dist/index.html: $(CONSOLE_SRC) console/node_modules/.package-lock.json
	cd console && node build.mjs

$(CONSOLE_GEN): console/dist/index.html scripts/embed-console.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-console.sh $@ console/dist

$(B)/obj/gen/console_files.o: $(CONSOLE_GEN) src/api/console.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -c $< -o $@

$(B)/test/obj/gen/console_files.o: $(CONSOLE_GEN) src/api/console.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -c $< -o $@

$(B)/obj/%.o: src/%.c $(HDRS) | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -c $< -o $@

$(B)/obj/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -c $< -o $@

$(B)/lyceumd: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

# The test build: AddressSanitizer and UndefinedBehaviorSanitizer, no optimisation surprises.
$(B)/test/obj/%.o: src/%.c $(HDRS) | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) $(PKG_CFLAGS) -c $< -o $@

$(B)/test/obj/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -c $< -o $@

$(B)/test/lyceumd: $(TOBJ)
	$(CC) -g $(SAN) -o $@ $^ $(PKG_LIBS)

$(B)/test/unit/%: %.c $(TLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) $(PKG_CFLAGS) -o $@ $< $(TLIB_OBJ) $(PKG_LIBS) -lcmocka

# The fuzz target: clang's libFuzzer over the router, the dispatcher and the JSON bodies.
FUZZ_SRC := $(LIB_SRC) $(GEN) $(CONSOLE_GEN) tests/fuzz/fuzz_api.c
$(B)/fuzz/fuzz_api: $(FUZZ_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined $(WARN) $(PKG_CFLAGS) -o $@ \
		$(FUZZ_SRC) $(PKG_LIBS)

run: deps-serve $(B)/lyceumd
	./$(B)/lyceumd serve --listen 127.0.0.1:8000 --data ./var --demo

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

e2e: $(B)/test/lyceumd
	LYCEUMD_BIN=$(CURDIR)/$(B)/test/lyceumd /usr/bin/python3 -m pytest -q -rs tests/e2e

# The Docker executor under the sanitizers, driven against a real engine (tests/docker/run.sh);
# an engine that cannot start fails it.
docker-driver:
	B=$(B)-docker sh tests/docker/run.sh

# The inference tests' model server and model (built once per machine, cached outside the
# repository: scripts/tiny-llm.sh) and the OpenAI SDK they drive lyceumd with.
tiny-llm:
	@sh scripts/tiny-llm.sh >/dev/null
	@test -d tests/e2e/openai/node_modules/openai || \
		(cd tests/e2e/openai && npm ci --no-audit --no-fund >/dev/null)

# Mutation testing (not part of make test: it takes a while): every tests/mutants/*.patch must
# be caught by the tests it names. See scripts/mutants.sh.
mutants: deps
	$(MAKE) tiny-llm
	sh scripts/mutants.sh

fuzz: $(B)/fuzz/fuzz_api
	sh tests/fuzz/run.sh $(B)/fuzz/fuzz_api

format:
	clang-format -i $(SRC) $(HDRS) $(UNIT_SRC) tests/fuzz/*.c

format-check:
	clang-format --dry-run -Werror $(SRC) $(HDRS) $(UNIT_SRC) tests/fuzz/*.c

test: deps
	$(MAKE) format-check
	sh scripts/check-layers.sh
	$(MAKE) $(B)/lyceumd $(B)/test/lyceumd
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) tiny-llm
	@# The Docker engine the tests start (scripts/dockerd.sh) is stopped whatever they say.
	$(MAKE) docker-driver && $(MAKE) e2e; rc=$$?; sh scripts/dockerd.sh stop; exit $$rc

$(B)/bench/meter: bench/meter.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -o $@ $< $(LIB_OBJ) $(PKG_LIBS)

bench: deps $(B)/lyceumd $(B)/bench/meter
	$(B)/bench/meter
	sh bench/http.sh
	sh bench/storage.sh
	/usr/bin/python3 bench/runs.py $(B)/lyceumd
	/usr/bin/python3 bench/logs.py $(B)/lyceumd
	/usr/bin/python3 bench/console.py $(B)/lyceumd

# The Debian package (scripts/deb.sh): $(B)/lyceumd_VERSION_ARCH.deb; DEB_VERSION overrides.
deb: $(B)/lyceumd
	@B=$(B) sh scripts/deb.sh

clean:
	rm -rf build console/dist

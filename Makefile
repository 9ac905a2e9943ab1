# vmshim: libvmshim.so (shim/), helperd (helperd/), the policy (policy/), tests (tests/).
#
#   make                 build everything into build/
#   make SAN=1           the same with ASan+UBSan, into build-san/
#   make TSAN=1          the same with ThreadSanitizer, into build-tsan/ (a TSan program
#                        loads the TSan runtime itself: preload only the shim)
#   make check-unit      build and run the cmocka unit tests
#   make soak            the long forms: every fuzz target 10 minutes, then t_stress with
#                        100,000 short connections in the test VM (about 10 minutes)
#   make install PREFIX=/usr/local   (also LIBDIR, UNITDIR, MANDIR; debian/rules sets them)
#   make programs        only what `make install` installs

CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=

ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(TSAN),1)
BUILD   ?= build-tsan
SANFLAGS = -fsanitize=thread
else
BUILD   ?= build
SANFLAGS =
endif

WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALLFLAGS  = -std=gnu11 -D_GNU_SOURCE -Iinclude -Ipolicy $(WARN) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -MMD -MP
LINKFLAGS = $(LDFLAGS) $(SANFLAGS)

# The forwarding of the relay and of helperd's guest-wide bridge, with its sockmap engine
# (common/splice.mk), linked only into those two (and helperd's unit tests): it needs libbpf.
FORWARD_SRC = common/forward.c common/forward_copy.c common/splice.c
COMMON_SRC  = $(filter-out $(FORWARD_SRC) %.bpf.c,$(wildcard common/*.c))
POLICY_SRC  = $(wildcard policy/*.c)
SHIM_SRC    = $(wildcard shim/*.c)
HELPERD_SRC = $(filter-out %.bpf.c,$(wildcard helperd/*.c))
RELAY_SRC   = $(filter-out %.bpf.c,$(wildcard relay/*.c))
UNIT_SRC    = $(wildcard tests/unit/test_*.c)
PROG_SRC    = $(filter-out tests/progs/failalloc.c,$(wildcard tests/progs/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_OBJ  = $(call obj,$(COMMON_SRC))
FORWARD_OBJ = $(call obj,$(FORWARD_SRC))
# The shim takes only what it uses: no daemon loop or log inside applications.
# Of these, the ones that make system calls are built again with the real calls (SHIM_REAL_OBJ).
SHIM_REAL_OBJ = $(BUILD)/obj/shim/fdpass.o $(BUILD)/obj/shim/vsock.o
SHIM_COMMON_OBJ = $(call obj,common/endpoint.c common/proto.c common/relayproto.c common/dialled.c) \
	$(SHIM_REAL_OBJ)
POLICY_OBJ  = $(call obj,$(POLICY_SRC))
SHIM_OBJ    = $(call obj,$(SHIM_SRC))
HELPERD_OBJ = $(call obj,$(HELPERD_SRC))
RELAY_OBJ   = $(call obj,$(RELAY_SRC))
# helperd's pieces without its main(), for unit tests
HELPERD_LIB = $(filter-out $(BUILD)/obj/helperd/main.o,$(HELPERD_OBJ))

UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
PROG_BIN = $(patsubst tests/progs/%.c,$(BUILD)/progs/%,$(PROG_SRC)) $(BUILD)/progs/failalloc.so \
	$(patsubst tests/progs/go/%.go,$(BUILD)/progs/%,$(wildcard tests/progs/go/*.go))

PROGRAMS = $(BUILD)/libvmshim.so $(BUILD)/helperd $(BUILD)/vmshimctl $(BUILD)/vmshim-relay

.PHONY: all programs vm-programs check-unit install clean fuzz
all: $(PROGRAMS) $(UNIT_BIN) $(PROG_BIN)
programs: $(PROGRAMS)
# what the test VM runs (scripts/test builds the unit tests later, beside the VM)
vm-programs: $(PROGRAMS) $(PROG_BIN)

$(BUILD)/obj/shim/%.o: shim/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

# The shim's copies of common code make the real calls, not the shim's hooks
# (include/vmshim/real.h).
$(SHIM_REAL_OBJ): $(BUILD)/obj/shim/%.o: common/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -fPIC -fvisibility=hidden -include shim/shim.h \
		'-DREAL(call)=real.call' -c $< -o $@

# Code that also goes into the shim must be position independent.
$(BUILD)/obj/policy/%.o: policy/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -fPIC -c $< -o $@

$(BUILD)/obj/common/%.o: common/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -fPIC -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -c $< -o $@

# The shim reads the table (common/table.c); it never links the policy's parser.
$(BUILD)/libvmshim.so: $(SHIM_OBJ) $(SHIM_COMMON_OBJ) $(BUILD)/obj/common/table.o shim/libvmshim.map
	$(CC) -shared -Wl,--version-script=shim/libvmshim.map -Wl,-z,defs,-z,now $(LINKFLAGS) \
		-o $@ $(filter %.o,$^) -ldl -lpthread

$(BUILD)/helperd: $(HELPERD_OBJ) $(POLICY_OBJ) $(COMMON_OBJ) $(FORWARD_OBJ)
	$(CC) $(LINKFLAGS) -o $@ $^ $(GUESTWIDE_LIBS)

# The host side: policy/statements.o, file_owner.o and addr.o for its host policy's syntax,
# file and addresses, libbpf for the sockmap engine (common/splice.mk); libvirt and libxml2,
# to follow the domains libvirt runs and read their CIDs, only their headers: the relay
# loads them when its policy asks (relay/libvirt_api.h).
LIBVIRT_CFLAGS = $(shell pkg-config --cflags libvirt libxml-2.0)
$(BUILD)/obj/relay/libvirt.o $(BUILD)/obj/relay/libvirt_api.o: ALLFLAGS += $(LIBVIRT_CFLAGS)
# A sanitizer intercepts libtirpc's xdr calls, which libvirt makes, and finds the real ones
# as the program starts: with libvirt loaded later, libvirt called a null one (SEGV at pc
# 0 in virNetMessageEncodeHeader, ASan and TSan). So a sanitized relay has libtirpc from
# the start.
RELAY_TIRPC = -Wl,--no-as-needed -l:libtirpc.so.3 -Wl,--as-needed
RELAY_SAN_LIBS = $(if $(SANFLAGS),$(RELAY_TIRPC))
$(BUILD)/vmshim-relay: $(RELAY_OBJ) $(call obj,policy/statements.c policy/file_owner.c policy/addr.c) $(COMMON_OBJ) \
		$(FORWARD_OBJ)
	$(CC) $(LINKFLAGS) -o $@ $^ $(SPLICE_LIBS) -ldl -lpthread $(RELAY_SAN_LIBS)

$(BUILD)/vmshimctl: helperd/ctl/vmshimctl.c
	$(CC) $(ALLFLAGS) $(LINKFLAGS) -o $@ $<

# libFuzzer targets (clang): tests/fuzz/fuzz_NAME.c against the code it names, with the kept
# corpus in tests/fuzz/corpus/NAME. `make fuzz FUZZ_SECONDS=N` runs each for N seconds.
FUZZ_SECONDS ?= 20
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_FLAGS = -std=gnu11 -D_GNU_SOURCE -Iinclude -Ipolicy -Irelay $(WARN) -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

build-fuzz/fuzz_peerproto: tests/fuzz/fuzz_peerproto.c common/peerproto.c
build-fuzz/fuzz_policy: tests/fuzz/fuzz_policy.c $(POLICY_SRC) $(COMMON_SRC)
build-fuzz/fuzz_relayproto: tests/fuzz/fuzz_relayproto.c common/relayproto.c
build-fuzz/fuzz_dialled: tests/fuzz/fuzz_dialled.c common/dialled.c
build-fuzz/fuzz_hybrid_ok: tests/fuzz/fuzz_hybrid_ok.c relay/hybrid_line.c relay/hybrid_line.h
build-fuzz/fuzz_request: tests/fuzz/fuzz_request.c
build-fuzz/fuzz_reply: tests/fuzz/fuzz_reply.c
build-fuzz/fuzz_request build-fuzz/fuzz_reply: common/proto.c common/fdpass.c \
	tests/fuzz/fuzz_fdpass.h include/vmshim/proto.h include/vmshim/fdpass.h
$(FUZZ_BIN):
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -o $@ $(filter %.c,$^)

# One run per target, so that `make -j2 -Otarget fuzz` runs two at once, each on a core of its
# own for FUZZ_SECONDS, and prints each run's lines together.
FUZZ_RUNS = $(patsubst build-fuzz/%,run-%,$(FUZZ_BIN))
.PHONY: fuzz $(FUZZ_RUNS)
fuzz: $(FUZZ_RUNS)
$(FUZZ_RUNS): run-fuzz_%: build-fuzz/fuzz_%
	@mkdir -p tests/fuzz/corpus/$* build-fuzz/corpus-$*
	@echo "== $< for $(FUZZ_SECONDS) s"
	@rc=0; $< -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -print_final_stats=1 \
		build-fuzz/corpus-$* tests/fuzz/corpus/$* >build-fuzz/$*.log 2>&1 || rc=$$?; \
		tail -n 12 build-fuzz/$*.log; exit $$rc

$(BUILD)/tests/%: tests/unit/%.c $(HELPERD_LIB) $(POLICY_OBJ) $(COMMON_OBJ) $(FORWARD_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -Ihelperd -Ishim -DFIXTURES='"tests/unit/fixtures"' $(LINKFLAGS) -o $@ \
		$(filter %.c %.o %.a,$^) -lcmocka $(TEST_LIBS) $(GUESTWIDE_LIBS)

# test_relay tests the relay's host policy, what a reload keeps, its hybrid handshake and paths.
$(BUILD)/tests/test_relay: $(call obj,relay/host_policy.c relay/host_domains.c relay/regrant.c relay/hybrid_line.c relay/hybrid_path.c)
$(BUILD)/tests/test_relay: ALLFLAGS += -Irelay

# test_shim_parts also links a few shim pieces, without the hooks (init.o needs dlsym).
$(BUILD)/tests/test_shim_parts: $(call obj,shim/tcpopts.c shim/tcpinfo.c shim/fdstate.c shim/init.c shim/table_client.c shim/source_port.c shim/tcp_refuses.c)
$(BUILD)/tests/test_shim_parts: TEST_LIBS = -ldl -lpthread

$(BUILD)/progs/%: tests/progs/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) $(LINKFLAGS) -o $@ $(filter %.c %.o,$^) -lpthread $(PROG_LIBS)

# stress's crowd speaks and connects as a sibling's shim does.
$(BUILD)/progs/stress: $(call obj,common/dialled.c common/vsock.c)

# Its connection is io_uring's operations (guest-wide mode's test).
$(BUILD)/progs/uring_client: PROG_LIBS = -luring

# Go programs, static (no cgo), as Go builds them: the ones guest-wide mode is for.
$(BUILD)/progs/%: tests/progs/go/%.go
	@mkdir -p $(@D)
	CGO_ENABLED=0 go build -o $@ $<

# A library preloaded ahead of the shim to make it run out of memory; never sanitized.
$(BUILD)/progs/failalloc.so: tests/progs/failalloc.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -shared -o $@ $<

# Static and unsanitized: it stands for the programs the shim cannot see.
$(BUILD)/progs/raw_static: tests/progs/raw_static.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -static -o $@ $<

check-unit: $(UNIT_BIN) check-own-calls check-fd-race
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Threads that close, duplicate and use the same descriptors under the shim, on loopback
# (tests/progs/fd_race.c). An ASan program wants its runtime loaded first. TSan's own model of
# descriptors calls a dup() racing a close() of the same number a race: the test does that
# on purpose, so only the shim's memory accesses are checked (ignore_interceptors_accesses).
FD_RACE_PRELOAD = $(if $(filter 1,$(SAN)),$(shell $(CC) -print-file-name=libasan.so)) \
	$(BUILD)/libvmshim.so
.PHONY: check-fd-race
check-fd-race: $(BUILD)/libvmshim.so $(BUILD)/progs/fd_race
	@echo "== $(BUILD)/progs/fd_race under $(BUILD)/libvmshim.so"; \
	VMSHIM_RUNDIR=/nonexistent TSAN_OPTIONS=ignore_interceptors_accesses=1 \
		LD_PRELOAD="$(strip $(FD_RACE_PRELOAD))" timeout 300 $(BUILD)/progs/fd_race

# Inside libvmshim.so only the real calls: a call through the PLT to a name the shim exports
# would reach the shim's own hook.
.PHONY: check-own-calls
check-own-calls: $(BUILD)/libvmshim.so
	@echo "== $< calls none of its own hooks"; \
	hooks=$$(sed -n '/global:/,/local:/{/:/d;s/;//g;p}' shim/libvmshim.map | xargs | tr ' ' '|'); \
	! objdump -d $< | grep -E "call.*<($$hooks)@plt>"

# The guest's part (the shim, helperd, vmshimctl, the vmshim wrapper, the example policy,
# helperd's unit) and the host's (vmshim-relay, its unit), with their manual pages.
install: $(PROGRAMS)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/vmshim $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(BUILD)/libvmshim.so $(DESTDIR)$(LIBDIR)/libvmshim.so
	install -m 0755 $(BUILD)/helperd $(DESTDIR)$(PREFIX)/sbin/helperd
	install -m 0755 $(BUILD)/vmshim-relay $(DESTDIR)$(PREFIX)/sbin/vmshim-relay
	install -m 0755 $(BUILD)/vmshimctl $(DESTDIR)$(PREFIX)/bin/vmshimctl
	sed 's|@LIBDIR@|$(LIBDIR)|g' helperd/ctl/vmshim.in > $(DESTDIR)$(PREFIX)/bin/vmshim
	chmod 0755 $(DESTDIR)$(PREFIX)/bin/vmshim
	install -m 0644 policy/example.policy $(DESTDIR)$(PREFIX)/share/vmshim/example.policy
	install -m 0644 relay/example.policy $(DESTDIR)$(PREFIX)/share/vmshim/example-relay.policy
	sed 's|@PREFIX@|$(PREFIX)|g' helperd/helperd.service.in > $(DESTDIR)$(UNITDIR)/vmshim-helperd.service
	sed 's|@PREFIX@|$(PREFIX)|g' relay/vmshim-relay.service.in > $(DESTDIR)$(UNITDIR)/vmshim-relay.service
	install -m 0644 helperd/ctl/vmshimctl.1 helperd/ctl/vmshim.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 helperd/helperd.8 relay/vmshim-relay.8 $(DESTDIR)$(MANDIR)/man8/

clean:
	rm -rf build build-san build-tsan build-fuzz build-deb

# bench: builds the benchmark programs in bench/ (and the shim, helperd, vmshimctl, the
# relay); bench/run measures.
BENCH_BIN = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
.PHONY: bench
bench: $(BUILD)/libvmshim.so $(BUILD)/helperd $(BUILD)/vmshimctl $(BUILD)/vmshim-relay $(BENCH_BIN)
vm-programs: $(BENCH_BIN) # tests/vm/t_bench_smoke runs them

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -Itests/progs $(LINKFLAGS) -o $@ $<

# The relay's sockmap engine and its test program.
include common/splice.mk
include helperd/guestwide.mk

# Every dependency file, also of what is built from its source in one step (vmshimctl, the
# test programs): a header change rebuilds them too.
-include $(shell find $(BUILD) -path $(BUILD)/testvm -prune -o -name '*.d' -print 2>/dev/null)

# The long forms of what CI runs briefly.
.PHONY: soak
soak: all
	$(MAKE) fuzz FUZZ_SECONDS=600
	scripts/testvm --timeout 3600 -- env BUILD=$(BUILD) STRESS_SHORT=100000 tests/vm/run t_stress

# The sockmap engine (common/splice.*: the relay's and the guest-wide bridge's), for the
# Makefile to include: the BPF object (clang -target bpf), its bpftool skeleton, and
# $(BUILD)/obj/common/splice.o, which needs SPLICE_LIBS when linked.
SPLICE_GEN   = $(BUILD)/gen/common
SPLICE_LIBS  = -lbpf
BPF_CLANG   ?= clang
# -mcpu=v3: 32-bit ALU and jumps, so that the verifier sees bounds checked on 32-bit values.
# -target bpf leaves out the multiarch directory where Debian keeps <asm/types.h>.
BPF_CFLAGS   = -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
	-idirafter /usr/include/$(shell $(CC) -print-multiarch)

$(SPLICE_GEN)/splice.bpf.o: common/splice.bpf.c common/splice.mk
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(SPLICE_GEN)/splice.skel.h: $(SPLICE_GEN)/splice.bpf.o
	bpftool gen skeleton $< name splice_bpf > $@.tmp
	mv $@.tmp $@

$(BUILD)/obj/common/splice.o: common/splice.c include/vmshim/splice.h $(SPLICE_GEN)/splice.skel.h
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -I$(SPLICE_GEN) -c $< -o $@

# The engine's test, run in the test VM.
$(BUILD)/progs/splice_check: tests/progs/splice_check.c $(BUILD)/obj/common/splice.o \
		$(BUILD)/obj/common/vsock.o
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) $(LINKFLAGS) -o $@ $(filter %.c %.o,$^) $(SPLICE_LIBS)

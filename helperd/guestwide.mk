# helperd's guest-wide mode (helperd/guestwide.*), for the Makefile to include: the BPF
# object, its bpftool skeleton, and $(BUILD)/obj/helperd/guestwide.o, which needs
# GUESTWIDE_LIBS when linked. BPF_CLANG and BPF_CFLAGS are common/splice.mk's.
GUESTWIDE_GEN  = $(BUILD)/gen/helperd
GUESTWIDE_LIBS = -lbpf

$(GUESTWIDE_GEN)/guestwide.bpf.o: helperd/guestwide.bpf.c helperd/guestwide_maps.h \
		include/vmshim/ownpath.h helperd/guestwide.mk
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -Iinclude -c $< -o $@

$(GUESTWIDE_GEN)/guestwide.skel.h: $(GUESTWIDE_GEN)/guestwide.bpf.o
	bpftool gen skeleton $< name guestwide_bpf > $@.tmp
	mv $@.tmp $@

$(BUILD)/obj/helperd/guestwide.o: helperd/guestwide.c $(GUESTWIDE_GEN)/guestwide.skel.h
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -I$(GUESTWIDE_GEN) -c $< -o $@

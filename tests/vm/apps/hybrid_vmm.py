"""The host side of hybrid vsock, as Firecracker and Cloud Hypervisor do it, for one VM
whose guest is a namespace of the test VM (its vsock is the test VM's, CID 1):

  - the VM's socket UDS takes "CONNECT <port>\\n" from host programs, connects to that
    vsock port of the guest and answers "OK <local port>\\n" (or closes, as the VMMs do
    when nothing listens there; its local port is the kernel's choice, where the VMMs
    count up from 2^30: muxer.rs, allocate_local_port);
  - a guest connection to the host's port HOSTPORT (here: vsock port GUESTPORT of CID 1,
    since the guest's "host" is this program) is delivered to UDS_HOSTPORT.

Then it copies both ways and ends connections as the VMMs do, checked against their source
(csm/connection.rs of both, 2026-08; README, "Host side"):

  - By default as Firecracker, and Cloud Hypervisor before 53.0: no half-close passes.
    The guest's shutdown(SHUT_WR) (VSOCK_OP_SHUTDOWN, SEND flag only) changes the VMM's
    state and nothing else: the host socket is never shut down (send_pkt, arm
    `Established if op == SHUTDOWN`); the host hears of the guest again only when it
    closes (SHUTDOWN with RCV: an RST, and the muxer drops the host socket). An EOF on the
    host socket becomes SHUTDOWN with RCV and SEND (recv_pkt, `read_cnt == 0`): the guest
    reads EOF and can send no more (what it still sends, the VMM drops: LocalClosed).
  - With --half-close as Cloud Hypervisor 53.0 and later (commits "Handle guest
    half-close", "Handle host half-close"): the guest's SHUT_WR becomes shutdown(SHUT_WR)
    of the host socket, and the host's becomes SHUTDOWN with SEND only, with RCV as well
    where the host socket hung up altogether (both ways shut).

Where it differs: it sees the guest through its own vsock socket, not the packets. So a
guest's close (SHUTDOWN with RCV) shows only as a zero-length send failing with EPIPE (the
kernel's peer_shutdown check in vsock_connectible_sendmsg), which it tries every 20 ms
after the guest's EOF: the host hears of it up to 20 ms later than from a VMM. Flow control
is its kernel socket's, not a TxBuf. After the host's EOF (without --half-close) it closes
both sockets at once, where Firecracker keeps the host socket until the guest's RST or its
shutdown timeout, reading nothing from it meanwhile. A guest's SHUT_RD alone is not
modelled. Ends on SIGTERM.

    hybrid_vmm.py [--half-close] UDS GUESTPORT HOSTPORT"""
import os, select, socket, sys, threading

half_close = sys.argv[1] == "--half-close"
args = sys.argv[2:] if half_close else sys.argv[1:]
uds, guest_port, host_port = args[0], int(args[1]), int(args[2])
GUEST_POLL_S = 0.02


def guest_closed(guest):
    """Whether the guest has closed, not only shut down its write side: then the kernel
    refuses even an empty send."""
    try:
        guest.send(b"", socket.MSG_NOSIGNAL)
        return False
    except OSError:
        return True


def host_hung_up(host):
    """Whether the host socket is shut both ways (Cloud Hypervisor's EPOLLHUP test)."""
    p = select.poll()
    p.register(host, select.POLLHUP)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))


class Connection:
    """One guest vsock connection and its host Unix socket. Both sockets are closed as soon
    as the connection is over, as the VMMs do: a socket left open for later would, when it
    finally closed, reset whichever guest socket had taken its port by then (on 6.12 a
    closed vsock socket gives its port up before its connection is over)."""

    def __init__(self, guest, host):
        self.guest, self.host = guest, host
        self.over = threading.Event()
        self.lock = threading.Lock()
        self.running = 2
        for pipe in (self.guest_to_host, self.host_to_guest):
            threading.Thread(target=self.run, args=(pipe,), daemon=True).start()

    def run(self, pipe):
        try:
            pipe()
        except OSError:
            self.end()
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            self.guest.close()
            self.host.close()

    def end(self):
        """Ends both ways at once (an RST to the guest, the host socket dropped)."""
        self.over.set()
        for s in (self.guest, self.host):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def guest_to_host(self):
        while data := self.guest.recv(65536):
            self.host.sendall(data)
        if self.over.is_set():
            return
        if half_close:
            self.host.shutdown(socket.SHUT_WR)
            return
        while not self.over.wait(GUEST_POLL_S):
            if guest_closed(self.guest):
                self.end()

    def host_to_guest(self):
        while data := self.host.recv(65536):
            self.guest.sendall(data)
        if self.over.is_set():
            return
        if half_close and not host_hung_up(self.host):
            self.guest.shutdown(socket.SHUT_WR)
            return
        self.guest.shutdown(socket.SHUT_RDWR)
        self.end()


def host_initiated(conn):
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:
        c = conn.recv(1)
        if not c:
            return conn.close()
        line += c
    word, port = line.split()
    assert word == b"CONNECT", line
    guest = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        guest.connect((1, int(port)))
        conn.sendall(b"OK %d\n" % guest.getsockname()[1])
    except OSError:
        guest.close()
        return conn.close()
    Connection(guest, conn)


def serve_uds():
    if os.path.exists(uds):
        os.unlink(uds)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(uds)
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=host_initiated, args=(conn,), daemon=True).start()


def serve_guest():
    srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    srv.bind((socket.VMADDR_CID_ANY, guest_port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            host.connect(f"{uds}_{host_port}")
        except OSError:
            conn.close()
            host.close()
            continue
        Connection(conn, host)


threading.Thread(target=serve_uds, daemon=True).start()
print("ready", flush=True)
serve_guest()

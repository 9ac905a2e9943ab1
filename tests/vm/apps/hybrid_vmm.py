"""The host side of hybrid vsock, as Firecracker and Cloud Hypervisor do it, for one VM
whose guest is a namespace of the test VM (its vsock is the test VM's, CID 1):

  - the VM's socket UDS takes "CONNECT <port>\\n" from host programs, connects to that
    vsock port of the guest and answers "OK <local port>\\n" (or closes, as the VMMs do
    when nothing listens there);
  - a guest connection to the host's port HOSTPORT (here: vsock port GUESTPORT of CID 1,
    since the guest's "host" is this program) is delivered to UDS_HOSTPORT.

Then it copies both ways, passing half-closes on. Ends on SIGTERM.

    hybrid_vmm.py UDS GUESTPORT HOSTPORT"""
import os, socket, sys, threading

uds, guest_port, host_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def splice(a, b):
    """Copies both ways, passing half-closes on, and closes both sockets as soon as both ways
    are done, as the VMMs do: a socket left open for later would, when it finally closed,
    reset whichever guest socket had taken its port by then (on 6.12 a closed vsock socket
    gives its port up before its connection is over)."""
    finished = threading.Barrier(2, action=lambda: (a.close(), b.close()))

    def pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        finished.wait()

    threading.Thread(target=pipe, args=(a, b), daemon=True).start()
    threading.Thread(target=pipe, args=(b, a), daemon=True).start()


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
    splice(conn, guest)


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
        splice(conn, host)


threading.Thread(target=serve_uds, daemon=True).start()
print("ready", flush=True)
serve_guest()

"""Programs for tests/vm/t_faults.sh, each an ordinary TCP application that reports
every error it meets.

    faults.py echo-server PORT [FD_SPARE]  threaded echo server; with FD_SPARE, it
                                            fills its descriptor table up to that many free
    faults.py burst HOST PORT PROGRESS STOP  connect, echo 2000 bytes, close, again and
                                            again (at most 5000 times or 150 s) until the
                                            file STOP exists; the count goes to PROGRESS
    faults.py upload HOST PORT              send until the connection fails; print how
    faults.py slow-sink PORT                accept one connection, read its first MiB at
                                            once and the rest slowly
    faults.py at-fd-limit HOST PORT SPARE   one echo with only SPARE free descriptors
                                            before socket(); prints the open descriptors
                                            before and after
"""
import os
import resource
import socket
import socketserver
import sys
import time
import traceback


def echo_once(host, port, size):
    payload = os.urandom(size)
    # socket() and connect() only: nothing else may need a descriptor (at-fd-limit).
    with socket.socket() as s:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
    if got != payload:
        raise RuntimeError(f"{len(got)} bytes came back, not the {len(payload)} sent")


def fill_descriptors(spare):
    """Opens /dev/null until only SPARE descriptors are free under a limit of 64."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    for _ in range(spare):
        os.close(held.pop())


def open_descriptors():
    """Which descriptors are open, found without opening one."""
    found = []
    for fd in range(64):
        try:
            os.fstat(fd)
            found.append(fd)
        except OSError:
            pass
    return found


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while chunk := self.request.recv(65536):
            self.request.sendall(chunk)


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        print(f"SERVER ERROR from {client_address}: {traceback.format_exc()}", flush=True)


def echo_server(port, spare=None):
    server = EchoServer(("0.0.0.0", port), Echo)
    if spare is not None:
        fill_descriptors(spare)
    print("listening", flush=True)
    server.serve_forever()


def burst(host, port, progress, stop):
    deadline = time.monotonic() + 150
    count = errors = 0
    while count < 5000 and time.monotonic() < deadline and not os.path.exists(stop):
        try:
            echo_once(host, port, 2000)
            print(f"conn {count} ok", file=sys.stderr, flush=True)
        except Exception as e:
            errors += 1
            print(f"conn {count} ERROR {e!r}", file=sys.stderr, flush=True)
        count += 1
        with open(progress + ".tmp", "w") as f:
            f.write(str(count))
        os.replace(progress + ".tmp", progress)
    print(f"{count} connections, {errors} errors", flush=True)
    sys.exit(1 if errors else 0)


def upload(host, port):
    s = socket.create_connection((host, port))
    chunk = b"u" * 65536
    sent = 0
    try:
        while sent < 1 << 30:
            if sent < 1 << 20 <= sent + len(chunk):
                print("streaming", flush=True)
            sent += s.send(chunk)
    except OSError as e:
        print(f"send failed: {os.strerror(e.errno)} after {sent} bytes", flush=True)
    else:
        print("send never failed", flush=True)
        sys.exit(1)
    try:
        print(f"then recv: {len(s.recv(100))} bytes", flush=True)
    except OSError as e:
        print(f"then recv: {os.strerror(e.errno)}", flush=True)


def slow_sink(port):
    """The uploader says it streams once 1 MiB is sent: reading that much slowly took
    seconds. After it, the sink falls behind, so that the uploader is in the middle of a
    send when the sink's guest goes."""
    listener = socket.create_server(("0.0.0.0", port), reuse_port=False)
    conn, _ = listener.accept()
    print("accepted", flush=True)
    got = 0
    while chunk := conn.recv(65536 if got < 1 << 20 else 4096):
        got += len(chunk)
        if got >= 1 << 20:
            time.sleep(0.05)


def at_fd_limit(host, port, spare):
    echo_once(host, port, 100)  # the shim maps helperd's table on its first connect
    fill_descriptors(spare)
    before = open_descriptors()
    echo_once(host, port, 100000)
    after = open_descriptors()
    print(f"before {len(before)} after {len(after)} same {before == after}", flush=True)
    sys.exit(0 if before == after else 1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo-server":
        echo_server(int(args[0]), int(args[1]) if len(args) > 1 else None)
    elif cmd == "burst":
        burst(args[0], int(args[1]), args[2], args[3])
    elif cmd == "upload":
        upload(args[0], int(args[1]))
    elif cmd == "slow-sink":
        slow_sink(int(args[0]))
    elif cmd == "at-fd-limit":
        at_fd_limit(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(f"faults.py: unknown command {cmd}")

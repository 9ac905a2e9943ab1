#!/usr/bin/env python3
"""An unprivileged local user trying to take a sibling connection meant for another user's
server (issue 15, item 1). helperd wakes a listener with a doorbell, a loopback connection
from 127.86.83.77 to the server's port, which anyone sees in /proc/net/tcp; the thief
makes a socket of its own with the doorbell's two addresses and sends helperd a CLAIM with
it, as the shim would.

  claim_thief.py find PORT
      prints the source port of a doorbell connection to PORT (waits up to 10 s; exit 2)
  claim_thief.py udp|ping|tcp HELPERD_SOCKET LISTENER_ADDR PORT BELL_PORT
      udp   a UDP socket bound to the listener's address and port (UDP ports are not TCP's)
      ping  an ICMP ping socket (where net.ipv4.ping_group_range lets the user make one)
            whose ICMP id is the port
      tcp   a TCP connection with the doorbell's four-tuple, made in another network
            namespace (with a loopback of its own)
      Prints "stolen: ..." and exits 0 if helperd handed over the sibling's connection or
      a channel, "refused: ..." and exits 3 if it did not.
"""
import socket
import struct
import sys
import time

MAGIC, REGISTER, CLAIM = 0x564D5332, 1, 2
BELL = "127.86.83.77"


def find(port):
    bell_hex = "%08X" % struct.unpack("=I", socket.inet_aton(BELL))[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                local, remote = line.split()[1:3]
                if local.startswith(bell_hex + ":") and int(remote.split(":")[1], 16) == port:
                    print(int(local.split(":")[1], 16))
                    return 0
        time.sleep(0.01)
    return 2


def forged_socket(mode, addr, port, bell_port):
    if mode == "tcp":
        bell = socket.create_server((BELL, bell_port))
        s = socket.socket()
        s.bind((addr, port))
        s.connect((BELL, bell_port))
        bell.accept()
        return s
    proto = socket.IPPROTO_ICMP if mode == "ping" else 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, proto)
    s.bind((addr, port))
    s.connect((BELL, bell_port))
    return s


def ask(path, kind, sock):
    """The reply's status and descriptors; None and none when helperd does not answer."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.settimeout(5)
    c.connect(path)
    socket.send_fds(c, [struct.pack("=III", MAGIC, kind, 0)], [sock.fileno()])
    try:
        data, fds, _, _ = socket.recv_fds(c, 64, 1)
    except (socket.timeout, ConnectionError):
        return None, []
    return (struct.unpack("=Ii", data[:8])[1] if len(data) >= 8 else None), fds


def main():
    if sys.argv[1] == "find":
        return find(int(sys.argv[2]))
    mode, path, addr, port, bell_port = sys.argv[1:6]
    forged = forged_socket(mode, addr, int(port), int(bell_port))
    said = []
    for name, kind in (("claim", CLAIM), ("register", REGISTER)):
        status, fds = ask(path, kind, forged)
        if fds:
            got = socket.socket(fileno=fds[0])
            print(f"stolen: the {mode} socket's {name} got a {got.family.name} socket")
            return 0
        said.append(f"{name}: {'no answer' if status is None else f'status {status}'}")
    print("refused:", ", ".join(said))
    return 3


if __name__ == "__main__":
    sys.exit(main())

"""Many connections held at once, for the tests of what one user or one sibling may hold
(tests/vm/t_guest_wide_room.sh).

    hold_conns.py HOST PORT N UNTIL

Opens N connections to an echo server one after another, each with a round trip of a line
(5 s at most), and holds them all; prints "held N" once they are open, then keeps them until
the file UNTIL exists (60 s at most), and checks each echoes once more before it closes
them. Prints "stalled at connection I: ERROR" and exits 1 if one does not answer."""
import os
import socket
import sys
import time


def round_trip(s, i):
    line = f"connection {i}\n".encode()
    s.sendall(line)
    got = b""
    while len(got) < len(line):
        chunk = s.recv(len(line) - len(got))
        if not chunk:
            raise OSError("closed")
        got += chunk
    if got != line:
        raise OSError(f"echoed {got!r}")


def main():
    host, port, n, until = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    conns = []
    i = 0
    try:
        for i in range(n):
            s = socket.create_connection((host, port), timeout=5)
            conns.append(s)
            round_trip(s, i)
        print("held", n, flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.1)
        for i, s in enumerate(conns):
            round_trip(s, i)
    except OSError as e:
        print(f"stalled at connection {i}: {e}", flush=True)
        sys.exit(1)
    for s in conns:
        s.close()
    print("all answered again", flush=True)


main()

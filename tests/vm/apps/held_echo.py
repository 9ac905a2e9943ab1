"""One connection held open to an echo server (tests/vm/t_relay_reload.sh).

  held_echo.py HOST PORT GO

Sends 100000 bytes and reads their echo, prints "open", then waits (up to 120 s) for the
file GO: if the connection is closed meanwhile it prints "closed" and exits 0; once GO
exists it sends the same bytes again, shuts its write side, reads the rest, and prints
"intact" if every byte came back in order."""
import os, select, socket, sys, time

host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=30)
half = os.urandom(100000)
s.sendall(half)
got = b""
while len(got) < len(half):
    chunk = s.recv(65536)
    assert chunk, f"closed after {len(got)} bytes of the first echo"
    got += chunk
assert got == half, "the first echo differs"
print("open", flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(go):
    assert time.monotonic() < deadline, "never told to go on"
    if select.select([s], [], [], 0.1)[0]:
        try:
            extra = s.recv(65536)
        except OSError as e:
            print(f"closed ({e})", flush=True)
            sys.exit(0)
        if not extra:
            print("closed (EOF)", flush=True)
            sys.exit(0)
        sys.exit(f"unexpected bytes while idle: {extra[:32]!r}")
s.sendall(half)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
assert got == half, f"{len(got)} bytes came back the second time"
print("intact", flush=True)

"""A client that keeps its connection open in the middle of a transfer until told to go on:
connects, sends a first 64 KiB, waits for the file GO to exist, sends the rest of BYTES,
shuts down its side, and checks that the echo it read back (in a thread all along, so that
the echo never backs up) is what it sent.

    hold_client.py HOST PORT BYTES GO"""
import os, socket, sys, threading, time

host, port, size, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = os.urandom(size)
got = bytearray()
s = socket.create_connection((host, port))


def read_echo():
    while chunk := s.recv(65536):
        got.extend(chunk)


reader = threading.Thread(target=read_echo)
reader.start()
first = 65536
s.sendall(data[:first])
print("connected", s.getsockname()[0], flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("never told to go on")
    time.sleep(0.05)
s.sendall(data[first:])
s.shutdown(socket.SHUT_WR)
reader.join(60)
if bytes(got) != data:
    sys.exit(f"echo differs: {len(got)} of {size} bytes")
print("ok", size, flush=True)

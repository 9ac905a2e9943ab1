#!/usr/bin/env python3
"""Opens HTTP/1.0 connections to HOST:PORT for SECONDS seconds at no more than RATE a second
overall, from THREADS threads: each connection asks for / and reads the answer to its end.
Prints "connections=N per_s=R errors=E" (an error: no connection, or not a 200).

    sibling_load.py HOST PORT SECONDS RATE THREADS
"""
import socket
import sys
import threading
import time

host, port, seconds, rate, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5])
lock = threading.Lock()
start = time.monotonic()
end = start + seconds
slot = [start]
done = [0, 0]  # connections, errors


def next_slot():
    with lock:
        at = slot[0]
        slot[0] += 1 / rate
    return at


def one():
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        return answer.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def worker():
    while True:
        at = next_slot()
        if at >= end:
            return
        time.sleep(max(0.0, at - time.monotonic()))
        ok = one()
        with lock:
            done[0 if ok else 1] += 1


pool = [threading.Thread(target=worker) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
took = time.monotonic() - start
print(f"connections={done[0]} per_s={done[0] / took:.0f} errors={done[1]}")

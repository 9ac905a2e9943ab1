"""An HTTP upstream that accepts late: each connection waits DELAY seconds after it is
ready to be accepted, then gets a short answer. Serves COUNT connections, one at a time.

    slow_upstream.py PORT DELAY COUNT
"""
import select
import socket
import sys
import time

port, delay, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(64)
print("listening", flush=True)
for _ in range(count):
    select.select([listener], [], [])
    time.sleep(delay)
    conn, _ = listener.accept()
    conn.settimeout(10)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            break
        request += chunk
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nupstream\n")
    conn.close()
    print("served", flush=True)

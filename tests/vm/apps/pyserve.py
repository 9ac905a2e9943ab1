"""Servers and a client in the standard library's styles, for tests/vm/t_app_python.sh
(and t_relay's slow reader).

    pyserve.py asyncio-server PORT COUNT      serve COUNT connections with asyncio (epoll)
    pyserve.py threading-server PORT COUNT [ADDR]   socketserver.ThreadingTCPServer on ADDR
                                              (0.0.0.0; an IPv6 one such as :: for IPv6)
    pyserve.py forking-server PORT COUNT [ADDR]     socketserver.ForkingTCPServer (a child each)
    pyserve.py slow-server PORT COUNT [ADDR]  threading, reading 16 KiB per 4 ms (~4 MB/s)
    pyserve.py asyncio-client HOST PORT N BYTES   N concurrent connections, BYTES each
    pyserve.py answer-server ADDR PORT FILE   one connection: reads it to EOF, then sends FILE
                                              (ADDR IPv4 or IPv6, such as ::1)

Each server answers a connection with the SHA-256 of everything it read until EOF, plus
the peer address it saw (and its pid; the socketserver ones then the connection's local
address and port, from getsockname); the client checks the digest of what it sent."""
import asyncio
import hashlib
import os
import socket
import socketserver
import sys
import time


def reply(data, peer, local=None):
    tail = f" {local[0]}:{local[1]}" if local else ""
    return f"{hashlib.sha256(data).hexdigest()} {peer[0]} {os.getpid()}{tail}\n".encode()


async def asyncio_server(port, count):
    done = asyncio.Event()
    served = 0

    async def handle(reader, writer):
        nonlocal served
        data = await reader.read()
        writer.write(reply(data, writer.get_extra_info("peername")))
        await writer.drain()
        writer.close()
        served += 1
        if served == count:
            done.set()

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    print("listening", port, flush=True)
    async with server:
        await asyncio.wait_for(done.wait(), 60)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(reply(self.rfile.read(), self.client_address, self.request.getsockname()))


class SlowHandler(socketserver.StreamRequestHandler):
    def handle(self):
        data = bytearray()
        while chunk := self.request.recv(16384):
            data += chunk
            time.sleep(0.004)
        self.wfile.write(reply(data, self.client_address, self.request.getsockname()))


def answer_server(addr, port, path):
    ls = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen()
    print("listening", port, flush=True)
    c, _ = ls.accept()
    while c.recv(65536):
        pass
    with open(path, "rb") as f:
        c.sendall(f.read())
    c.close()


def socketserver_main(kind, port, count, addr):
    cls = socketserver.ForkingTCPServer if kind == "forking" else socketserver.ThreadingTCPServer
    cls.allow_reuse_address = True
    cls.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with cls((addr, port), SlowHandler if kind == "slow" else Handler) as server:
        print("listening", port, flush=True)
        server.timeout = 60
        for _ in range(count):
            server.handle_request()
        if kind == "forking":
            server.collect_children(blocking=True)


async def asyncio_client(host, port, n, size):
    async def one(i):
        data = hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1)
        data = data[:size]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        answer = (await reader.read()).decode().split()
        writer.close()
        if answer[0] != hashlib.sha256(data).hexdigest():
            raise SystemExit(f"connection {i}: digest differs")
        return answer

    answers = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 60)
    peers = sorted({a[1] for a in answers})
    pids = len({a[2] for a in answers})
    print(f"ok {n} connections, server saw {' '.join(peers)}, {pids} server processes", flush=True)


def main():
    what = sys.argv[1]
    if what == "asyncio-server":
        asyncio.run(asyncio_server(int(sys.argv[2]), int(sys.argv[3])))
    elif what in ("threading-server", "forking-server", "slow-server"):
        addr = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
        socketserver_main(what.split("-")[0], int(sys.argv[2]), int(sys.argv[3]), addr)
    elif what == "answer-server":
        answer_server(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif what == "asyncio-client":
        asyncio.run(asyncio_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        raise SystemExit(__doc__)


main()

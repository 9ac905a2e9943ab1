"""What a hostile guest or VMM user does to vmshim-relay (tests/vm/t_relay_attacks.sh). Every
wait is bounded; each prints one line saying what it saw.

  relay_attack.py ask VMMPORT CID PORT [PAYLOAD]
      a REQUEST for CID's PORT through a hybrid guest's VMM (vsock port VMMPORT of CID 1);
      prints "status N" and, on OK, sends PAYLOAD
  relay_attack.py ask-from SOURCE RELAYPORT CID PORT
      the same straight to the relay (CID 1), from vsock port SOURCE (a guest's on CID 1)
  relay_attack.py agent PORT SECONDS [STOP]
      a guest agent on vsock port PORT: prints who connected and what came, or "nobody"
      once SECONDS passed or the file STOP exists with no connection waiting
  relay_attack.py unix PATH SECONDS [ANSWER...]
      a Unix socket server at PATH: the n-th connection is answered ANSWER n (if given)
      after its first line; prints each connection's bytes, or "nobody"
  relay_attack.py garbage VMMPORT N
      N requests that break the rules, through the VMM; prints how many were answered
  relay_attack.py refused VMMPORT N
      N requests for a CID no guest has, through the VMM
  relay_attack.py strangers RELAYPORT FIRST N
      N connections to the relay (CID 1) from vsock ports FIRST.., no guest's
  relay_attack.py hold VMMPORT N SECONDS
      N connections through the VMM that send nothing for SECONDS
  relay_attack.py status-hogs PATH K SECONDS
      K connections to the relay's status socket that read nothing for SECONDS"""
import os, socket, struct, sys, time


def request(cid, port):
    return struct.pack(">4sBBHIII", b"VMSR", 1, 1, 0, cid, port, 1131072 + 1234)


def through_vmm(vmm):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((1, vmm))
    return s


def from_port(source, relay):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((socket.VMADDR_CID_ANY, source))
    s.connect((1, relay))
    return s


def ask(vmm, cid, port, payload=b"", s=None):
    s = s or through_vmm(vmm)
    s.sendall(request(cid, port))
    reply = s.recv(8)
    if len(reply) != 8:
        print(f"status none (got {reply!r})")
        return
    print(f"status {reply[6]}")
    if reply[6] == 0 and payload:
        s.sendall(payload)
        time.sleep(0.5)
    s.close()


def agent(port, seconds, stop=None):
    srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    srv.bind((socket.VMADDR_CID_ANY, port))
    srv.listen(8)
    srv.settimeout(0.1)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while True:
        # Looked at before accept(): one more try for what came before the file did.
        last = time.monotonic() > deadline or (stop and os.path.exists(stop))
        try:
            conn, peer = srv.accept()
            break
        except socket.timeout:
            if last:
                print("agent: nobody came", flush=True)
                return
    conn.settimeout(3)
    got = b""
    try:
        while len(got) < 4096 and (chunk := conn.recv(4096)):
            got += chunk
    except socket.timeout:
        pass
    print(f"agent: connection from {peer}, got {got!r}", flush=True)


def unix(path, seconds, answers):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    srv.settimeout(seconds)
    print("ready", flush=True)
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            break
        conn.settimeout(2)
        got = b""
        try:
            while not got.endswith(b"\n") and len(got) < 64 and (c := conn.recv(1)):
                got += c
            if n < len(answers):
                conn.sendall(answers[n].encode().decode("unicode_escape").encode())
                got += b" | after the answer: " + conn.recv(64)
        except (socket.timeout, OSError):
            pass
        print(f"{os.path.basename(path)}: connection {n}: {got!r}", flush=True)
        n += 1
        conn.close()
    if not n:
        print(f"{os.path.basename(path)}: nobody came", flush=True)


def garbage(vmm, n):
    answered = 0
    for _ in range(n):
        s = through_vmm(vmm)
        s.sendall(b"GET / HTTP/1.0\r\n\r\nxx")
        answered += len(s.recv(8)) == 8
        s.close()
    print(f"{answered} of {n} garbage requests answered")


def refused(vmm, n):
    answered = 0
    for _ in range(n):
        s = through_vmm(vmm)
        s.sendall(request(9, 1048656))
        answered += len(s.recv(8)) == 8
        s.close()
    print(f"{answered} of {n} requests for cid 9 answered")


def strangers(relay, first, n):
    for i in range(n):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind((socket.VMADDR_CID_ANY, first + i))
        s.connect((1, relay))
        try:
            s.recv(8)
        except OSError:
            pass
        s.close()
    print(f"{n} strangers called")


def hold(vmm, n, seconds):
    held = [through_vmm(vmm) for _ in range(n)]
    print("ready", flush=True)
    time.sleep(seconds)
    print(f"{len(held)} silent connections held for {seconds} s", flush=True)


def status_hogs(path, k, seconds):
    hogs = []
    for _ in range(k):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        hogs.append(s)
    print("ready", flush=True)
    time.sleep(seconds)
    print(f"{k} status readers held for {seconds} s", flush=True)


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "ask":
    ask(int(args[0]), int(args[1]), int(args[2]), args[3].encode() if len(args) > 3 else b"")
elif cmd == "ask-from":
    ask(None, int(args[2]), int(args[3]), s=from_port(int(args[0]), int(args[1])))
elif cmd == "agent":
    agent(int(args[0]), float(args[1]), args[2] if len(args) > 2 else None)
elif cmd == "unix":
    unix(args[0], float(args[1]), args[2:])
elif cmd == "garbage":
    garbage(int(args[0]), int(args[1]))
elif cmd == "refused":
    refused(int(args[0]), int(args[1]))
elif cmd == "strangers":
    strangers(int(args[0]), int(args[1]), int(args[2]))
elif cmd == "hold":
    hold(int(args[0]), int(args[1]), float(args[2]))
elif cmd == "status-hogs":
    status_hogs(args[0], int(args[1]), float(args[2]))
else:
    sys.exit(f"unknown command {cmd}")

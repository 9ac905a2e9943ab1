"""Fetches a static page over one keep-alive connection every 10 ms for SECONDS seconds and
prints the latencies: "requests=N p50_ms=A p99_ms=B max_ms=C".

    static_latency.py PORT SECONDS
"""
import http.client
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
latencies = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    start = time.monotonic()
    conn.request("GET", "/index.html")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"FAIL: status {response.status}")
    latencies.append((time.monotonic() - start) * 1000)
    time.sleep(0.01)
latencies.sort()
n = len(latencies)
print(f"requests={n} p50_ms={latencies[n // 2]:.1f} p99_ms={latencies[n * 99 // 100]:.1f} "
      f"max_ms={latencies[-1]:.1f}")

// Go programs no preload sees, built static (CGO_ENABLED=0): Go's net package makes its own
// system calls. Each prints what it must show as one line.
//
//	gwnet client HOST:PORT   fetches /big from http://HOST:PORT, prints the names of its
//	                         connection as Go reads them from the kernel ("names local=A
//	                         peer=B"), the SHA-256 and length of what it read ("ok HEX N"),
//	                         and the server's view of a connection ("server ..." from /whoami)
//	gwnet server PORT FILE   a net/http server on 0.0.0.0:PORT: /big sends FILE; /whoami
//	                         answers "peer=A local=B", the names the server got from
//	                         accept() and getsockname()
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gwnet:", err)
	os.Exit(1)
}

func client(hostport string) {
	var local, remote net.Addr
	dial := func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 10*time.Second)
		if err == nil {
			local, remote = c.LocalAddr(), c.RemoteAddr()
		}
		return c, err
	}
	web := &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{Dial: dial, DisableKeepAlives: true}}
	get := func(path string) []byte {
		resp, err := web.Get("http://" + hostport + path)
		if err != nil {
			fail(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fail(err)
		}
		return body
	}
	body := get("/big")
	fmt.Printf("names local=%s peer=%s\n", local, remote)
	fmt.Printf("ok %x %d\n", sha256.Sum256(body), len(body))
	fmt.Printf("server %s\n", get("/whoami"))
}

func server(port, file string) {
	http.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, file)
	})
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "peer=%s local=%s", r.RemoteAddr, local)
	})
	ln, err := net.Listen("tcp4", "0.0.0.0:"+port)
	if err != nil {
		fail(err)
	}
	fmt.Println("listening", port)
	fail(http.Serve(ln, nil))
}

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "client":
		client(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "server":
		server(os.Args[2], os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "usage: gwnet client HOST:PORT | gwnet server PORT FILE")
		os.Exit(2)
	}
}

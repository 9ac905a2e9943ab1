// A Go client, built static (CGO_ENABLED=0): Go's net package makes its own system calls,
// so no preload sees them. It fetches http://HOST:PORT/big, prints the names of its
// connection as Go reads them from the kernel (getsockname, getpeername), and the SHA-256
// and length of what it read, and the server's view of the connection (/whoami).
//
//	gwclient HOST:PORT
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

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gwclient HOST:PORT")
		os.Exit(2)
	}
	var local, remote net.Addr
	dial := func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 10*time.Second)
		if err == nil {
			local, remote = c.LocalAddr(), c.RemoteAddr()
		}
		return c, err
	}
	client := &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{Dial: dial, DisableKeepAlives: true}}
	get := func(path string) []byte {
		resp, err := client.Get("http://" + os.Args[1] + path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gwclient:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gwclient:", err)
			os.Exit(1)
		}
		return body
	}
	body := get("/big")
	fmt.Printf("names local=%s peer=%s\n", local, remote)
	fmt.Printf("ok %x %d\n", sha256.Sum256(body), len(body))
	fmt.Printf("server %s\n", get("/whoami"))
}

// A Go net/http server, built static (CGO_ENABLED=0), that no preload sees. /big sends the
// file FILE; /whoami answers "peer=ADDR local=ADDR", the connection's names as the server
// got them from accept() and getsockname().
//
//	gwserver PORT FILE
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gwserver PORT FILE")
		os.Exit(2)
	}
	http.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, os.Args[2])
	})
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "peer=%s local=%s", r.RemoteAddr, local)
	})
	ln, err := net.Listen("tcp4", "0.0.0.0:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gwserver:", err)
		os.Exit(1)
	}
	fmt.Println("listening", os.Args[1])
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gwserver:", err)
		os.Exit(1)
	}
}

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

func cmdReceive(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9800", "listen address")
	secret := fs.String("secret", "", "backend signing secret (whsec_...) to verify deliveries")
	status := fs.Int("status", 200, "status to answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rc, err := relay.NewReceiver(stdout, *secret, *status)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "edgerelay receive: listening on %s\n", *addr)
	srv := &http.Server{Addr: *addr, Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	return 0
}

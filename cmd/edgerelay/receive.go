package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

var receiveCommand = &command{name: "receive", run: cmdReceive, usage: `usage: edgerelay receive [-addr A] [-secret S] [-status N]   a test backend
Prints each delivery as a JSON line; with -secret it checks the relay's
Standard Webhooks signature. -status 400 makes every delivery fail for good,
which turns events into dead letters (see "edgerelay dlq").
`}

func cmdReceive(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	addr := fs.String("addr", "127.0.0.1:9800", "listen address")
	secret := fs.String("secret", "", "backend signing secret (whsec_...) to verify deliveries")
	status := fs.Int("status", 200, "status to answer")
	if done, code := parseFlags(cmd, fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(cmd, stderr, "unexpected argument %q", fs.Arg(0))
	}
	rc, err := relay.NewReceiver(stdout, *secret, *status)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	// Bind first: "listening" is said only once it is true.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "edgerelay receive: listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	return 0
}

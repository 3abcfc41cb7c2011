package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgerelay/edgerelay/relay"
	"github.com/edgerelay/edgerelay/relay/logout"
)

var runCommand = &command{name: "run", run: cmdRun, usage: `usage: edgerelay run [-config F] [-shutdown-grace D]   run the relay
-config defaults to config.hcl in the current directory. SIGHUP reloads the
file (an invalid one is refused and the running configuration stays);
SIGTERM or SIGINT drains and exits.
`}

func cmdRun(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	grace := fs.Duration("shutdown-grace", 20*time.Second, "how long SIGTERM waits for in-flight work")
	if done, code := parseFlags(cmd, fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(cmd, stderr, "unexpected argument %q", fs.Arg(0))
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	// The log lines gather in a buffer written a few times a second (relay/logout), not one
	// write per line; everything in it is written before the command returns, and the
	// messages below go through it so that they come after the lines before them.
	logs := logout.New(stderr)
	defer logs.Flush()
	stderr = logs
	srv, err := relay.New(cfg, relay.Options{LogOutput: logs, ShutdownGrace: *grace})
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay: %v\n", err)
		return 1
	}
	// Signals are the command's business, never the server's.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "edgerelay: %v\n", err)
		srv.Shutdown(context.Background())
		return 1
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_ = srv.Reload() // logged by Reload; the old configuration stays on error
			continue
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), *grace)
			defer cancel()
			done <- srv.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(stderr, "edgerelay: shutdown: %v\n", err)
				return 1
			}
			return 0
		case <-sigs:
			fmt.Fprintln(stderr, "edgerelay: second signal, exiting now")
			return 1
		}
	}
	return 0
}

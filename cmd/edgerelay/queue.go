package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"

	"github.com/edgerelay/edgerelay/queue"
)

func init() {
	// Files the relay creates (queue, certificates) are for its own user only: message bodies
	// and keys are in them.
	syscall.Umask(0o077)
}

var queueCommand = &command{name: "queue", run: cmdQueue, usage: queueUsage}

const queueUsage = `usage: edgerelay queue check|salvage -config F [-to DIR]   check or salvage the queue's files (relay stopped)

  queue check   -config F           read every queue file, change nothing, print the verdict
                                    (exit 1 when a file is damaged)
  queue salvage -config F -to DIR   copy what can be read into a fresh queue in DIR/queue
                                    (the damaged queue is left as it is)

Both need the relay stopped: they refuse while it holds the queue.
`

// cmdQueue runs the offline queue commands: check and salvage.
func cmdQueue(_ *command, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, queueUsage)
		return 0
	}
	if len(args) == 0 || (args[0] != "check" && args[0] != "salvage") {
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	fs := flag.NewFlagSet("queue "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file (its data_dir holds the queue)")
	to := fs.String("to", "", "salvage: a new data_dir to write the salvaged queue into")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	dir := filepath.Join(cfg.DataDir, "queue")
	if args[0] == "check" {
		rep, err := queue.Check(dir)
		if err != nil {
			fmt.Fprintf(stderr, "edgerelay: queue check %s: %v\n", dir, err)
			return 1
		}
		for _, t := range rep.TornTails {
			fmt.Fprintf(stdout, "torn tail (normal after a crash; dropped at start): %s\n", t)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "DAMAGED %s\n", p)
		}
		if len(rep.Problems) > 0 {
			fmt.Fprintf(stdout, "%s: %d damaged file(s) of %d read (%d bytes); the relay refuses to start on it; `edgerelay queue salvage` copies what can be read\n",
				dir, len(rep.Problems), rep.Files, rep.Bytes)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok, %d files read (%d bytes)\n", dir, rep.Files, rep.Bytes)
		return 0
	}
	if *to == "" {
		fmt.Fprint(stderr, "edgerelay: queue salvage needs -to DIR\n\n"+queueUsage)
		return 2
	}
	dst := filepath.Join(*to, "queue")
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := queue.Salvage(dir, dst, log)
	if err != nil {
		if errors.Is(err, queue.ErrInUse) {
			fmt.Fprintf(stderr, "edgerelay: queue salvage: %v: stop the relay first\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "edgerelay: queue salvage: %v\n", err)
		return 1
	}
	for _, s := range rep.SkippedFiles {
		fmt.Fprintf(stdout, "skipped: %s\n", s)
	}
	fmt.Fprintf(stdout, "salvaged into %s: %d events, %d pending deliveries, %d dead letters, %d other keys; "+
		"%d deliveries lost with their event, %d values unreadable\n",
		dst, rep.Events, rep.Pending, rep.Dead, rep.Other, rep.LostDeliveries, rep.UnreadableValues)
	fmt.Fprintf(stdout, "%s is untouched; point data_dir at %s (or move the queue directory) to run on the salvaged queue\n", dir, *to)
	return 0
}

package main

import (
	"fmt"
	"io"

	"github.com/edgerelay/edgerelay/relay"
)

var simulateCommand = &command{name: "simulate", run: cmdSimulate, usage: `usage: edgerelay simulate -channel NAME [-config F] [flags]   send a correctly signed sample callback
       edgerelay simulate -channel NAME [-config F] [-sample inbound|status] [-body FILE] [-url URL] [-insecure]
Sends a correctly signed sample callback of the channel's provider to the
running relay and prints the answer: how to check a setup end to end.
-config defaults to config.hcl in the current directory.
`}

func cmdSimulate(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	var o relay.SimulateOptions
	fs.StringVar(&o.Channel, "channel", "", "channel name (required)")
	fs.StringVar(&o.Sample, "sample", "inbound", "sample kind: inbound or status")
	fs.StringVar(&o.BodyFile, "body", "", "send this file's bytes instead of the sample")
	fs.StringVar(&o.URL, "url", "", "send here instead of the channel's listener")
	fs.BoolVar(&o.Insecure, "insecure", false, "do not verify the listener's certificate (self-signed)")
	if done, code := parseFlags(cmd, fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(cmd, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if o.Channel == "" {
		return usageError(cmd, stderr, "-channel is required")
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	o.Out = stdout
	res, err := relay.Simulate(cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay simulate: %v\n", err)
		return 1
	}
	if res.Status < 200 || res.Status > 299 {
		return 1
	}
	return 0
}

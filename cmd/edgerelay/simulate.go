package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/edgerelay/edgerelay/relay"
)

func cmdSimulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	var o relay.SimulateOptions
	fs.StringVar(&o.Channel, "channel", "", "channel name (required)")
	fs.StringVar(&o.Sample, "sample", "inbound", "sample kind: inbound or status")
	fs.StringVar(&o.BodyFile, "body", "", "send this file's bytes instead of the sample")
	fs.StringVar(&o.URL, "url", "", "send here instead of the channel's listener")
	fs.BoolVar(&o.Insecure, "insecure", false, "do not verify the listener's certificate (self-signed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Channel == "" {
		fmt.Fprintln(stderr, "edgerelay simulate: -channel is required")
		return 2
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

package main

import (
	"flag"
	"fmt"
	"io"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	for _, c := range cfg.Certificates {
		fmt.Fprintln(stdout, "  certificate", c)
	}
	return 0
}

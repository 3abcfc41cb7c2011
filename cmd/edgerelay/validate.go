package main

import (
	"fmt"
	"io"
)

var validateCommand = &command{name: "validate", run: cmdValidate, usage: `usage: edgerelay validate [-config F]   check a configuration file
-config defaults to config.hcl in the current directory. Every problem of the
file is reported at once, one per line as FILE:LINE:COL: error: ...; the exit
status is 1 when there is any. A valid file prints a one-line summary and the
certificates it names with their expiry.
`}

func cmdValidate(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
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
	fmt.Fprintln(stdout, cfg.Summary())
	for _, c := range cfg.Certificates {
		fmt.Fprintln(stdout, "  certificate", c)
	}
	return 0
}

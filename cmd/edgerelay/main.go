// Command edgerelay is the relay's single binary: it runs the relay,
// validates configurations, simulates provider callbacks and manages dead
// letters through the admin API. See README.md.
//
// Each command lives in its own file (run.go, validate.go, dlq.go, ...)
// and is listed once in commands below; cli.go has the flag helpers every
// command shares (per-command -h, the admin API flags).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/edgerelay/edgerelay/relay"
)

func main() {
	if relay.Version == "dev" {
		relay.Version = buildVersion().short()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: usage is printed by `edgerelay help NAME`,
// `edgerelay NAME -h` and on a usage error (its first line is the synopsis
// shown in the global usage).
type command struct {
	name  string
	usage string
	run   func(c *command, args []string, stdout, stderr io.Writer) int
}

// commands in the order the global usage lists them.
var commands = []*command{
	runCommand,
	validateCommand,
	simulateCommand,
	dlqCommand,
	quarantineCommand,
	certsCommand,
	queueCommand,
	receiveCommand,
	versionCommand,
}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func globalUsage() string {
	var b strings.Builder
	b.WriteString("usage: edgerelay <command> [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(&b, 2, 4, 3, ' ', 0)
	for _, c := range commands {
		syn, _, _ := strings.Cut(strings.TrimPrefix(c.usage, "usage: edgerelay "), "\n")
		_, desc, _ := strings.Cut(syn, "   ")
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, strings.TrimSpace(desc))
	}
	tw.Flush()
	b.WriteString(`
"edgerelay help COMMAND" or "edgerelay COMMAND -h" describes a command.
Commands that call the admin API (dlq, quarantine, certs, ...) need -admin HOST:PORT or URL,
or -config FILE (its admin block); -token or EDGERELAY_ADMIN_TOKEN gives the bearer token.
`)
	return b.String()
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, globalUsage())
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			c := lookupCommand(args[1])
			if c == nil {
				fmt.Fprintf(stderr, "edgerelay help: unknown command %q\n\n%s", args[1], globalUsage())
				return 2
			}
			fmt.Fprint(stdout, c.usage)
			return 0
		}
		fmt.Fprint(stdout, globalUsage())
		return 0
	case "-version", "--version":
		return versionCommand.run(versionCommand, nil, stdout, stderr)
	}
	if c := lookupCommand(args[0]); c != nil {
		return c.run(c, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "edgerelay: unknown command %q\n\n%s", args[0], globalUsage())
	return 2
}

func loadConfig(path string, stderr io.Writer) *relay.Config {
	cfg, diags := relay.LoadConfig(path)
	if len(diags) > 0 {
		fmt.Fprint(stderr, relay.FormatDiagnostics(diags))
	}
	if diags.HasErrors() {
		return nil
	}
	return cfg
}

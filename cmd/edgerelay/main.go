// Command edgerelay is the relay's single binary: it runs the relay,
// validates configurations, simulates provider callbacks and manages dead
// letters through the admin API. See README.md.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/edgerelay/edgerelay/relay"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: edgerelay <command> [flags]

commands:
  run       -config F                     run the relay
  validate  -config F                     check a configuration file
  simulate  -config F -channel NAME [-sample inbound|status] [-body FILE] [-url URL] [-insecure]
                                          send a correctly signed sample callback to a channel
  dlq list    [-backend B] [-json]        list dead letters
  dlq show    ID                          show one dead letter and its event
  dlq replay  (ID... | -all) [-backend B] deliver dead letters again
  dlq purge   (ID... | -all) [-backend B] drop dead letters
  certs                                   list served certificates
  queue check   -config F                 read every queue file (relay stopped), print the verdict
  queue salvage -config F -to DIR         copy what can be read of a damaged queue into DIR/queue
  receive   -addr A [-secret S] [-status N]
                                          a test backend: prints each delivery as a JSON line
  version                                 print the version

dlq and certs talk to the admin API: give -config F (reads its admin address) or -admin URL.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "simulate":
		return cmdSimulate(args[1:], stdout, stderr)
	case "dlq":
		return cmdDLQ(args[1:], stdout, stderr)
	case "queue":
		return cmdQueue(args[1:], stdout, stderr)
	case "certs":
		return cmdCerts(args[1:], stdout, stderr)
	case "receive":
		return cmdReceive(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "edgerelay %s\n", relay.Version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "edgerelay: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func loadConfig(path string, stderr io.Writer) *relay.Config {
	cfg, diags := relay.LoadConfig(path)
	if diags.HasErrors() {
		fmt.Fprint(stderr, relay.FormatDiagnostics(diags))
		return nil
	}
	if len(diags) > 0 {
		fmt.Fprint(stderr, relay.FormatDiagnostics(diags))
	}
	return cfg
}

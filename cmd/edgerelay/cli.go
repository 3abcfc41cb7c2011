package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet makes the flag set of a command: -h prints the command's
// usage on stdout (exit 0), a bad flag prints it on stderr (exit 2).
func newFlagSet(c *command, stderr io.Writer) *flag.FlagSet {
	name := strings.TrimSpace(strings.TrimPrefix(c.name, "edgerelay "))
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(c, fs, fs.Output()) }
	return fs
}

func printUsage(c *command, fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, c.usage)
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nflags:")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args; done is true when the command must return code
// right away (-h: 0 with the usage on stdout; a bad flag: 2).
func parseFlags(c *command, fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, code int) {
	// The flag package prints the usage itself for both -h and a bad flag:
	// catch it and print it where it belongs.
	wantUsage := false
	fs.Usage = func() { wantUsage = true }
	err := fs.Parse(args)
	fs.Usage = func() { printUsage(c, fs, fs.Output()) }
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(c, fs, stdout)
		return true, 0
	case err != nil:
		if wantUsage {
			fmt.Fprintln(fs.Output())
			printUsage(c, fs, fs.Output())
		}
		return true, 2
	}
	return false, 0
}

// usageError prints msg and the command's usage on stderr; exit code 2.
func usageError(c *command, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "edgerelay %s: %s\n\n%s", c.name, fmt.Sprintf(format, args...), c.usage)
	return 2
}

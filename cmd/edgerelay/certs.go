package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

var certsCommand = &command{name: "certs", run: cmdCerts, usage: `usage: edgerelay certs [-admin A | -config F]   list the certificates the relay serves
One line per certificate: listener, source (acme, static, self_signed), names,
issuer, expiry and days left.
` + adminFlagsUsage}

// certInfo is a certificate as GET /api/v1/certs shows it.
type certInfo struct {
	Listener string    `json:"listener"`
	Source   string    `json:"source"`
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
}

func cmdCerts(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	ao := addAdminFlags(fs)
	if done, code := parseFlags(cmd, fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(cmd, stderr, "unexpected argument %q", fs.Arg(0))
	}
	c, err := ao.client()
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay certs: %v\n", err)
		return 1
	}
	var res struct {
		Certificates []certInfo `json:"certificates"`
	}
	if err := c.do("GET", "/api/v1/certs", nil, &res); err != nil {
		fmt.Fprintf(stderr, "edgerelay certs: %v\n", err)
		return 1
	}
	printCerts(stdout, res.Certificates, time.Now())
	return 0
}

func printCerts(w io.Writer, certs []certInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tSOURCE\tNAMES\tISSUER\tEXPIRES\tDAYS LEFT")
	for _, ci := range certs {
		expires, left := "unknown", "-"
		if !ci.NotAfter.IsZero() {
			expires = ci.NotAfter.UTC().Format(time.RFC3339)
			left = fmt.Sprint(int(ci.NotAfter.Sub(now).Hours() / 24))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ci.Listener, ci.Source, strings.Join(ci.Names, ","), ci.Issuer, expires, left)
	}
	tw.Flush()
}

package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func cmdCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, admin := adminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := newAdminClient(*cfgPath, *admin, stderr)
	if c == nil {
		return 1
	}
	var res struct {
		Certificates []struct {
			Listener, Source, Issuer string
			Names                    []string
			NotAfter                 time.Time
		} `json:"certificates"`
	}
	if err := c.do("GET", "/api/v1/certs", nil, &res); err != nil {
		fmt.Fprintf(stderr, "edgerelay certs: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tSOURCE\tNAMES\tISSUER\tEXPIRES")
	for _, ci := range res.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ci.Listener, ci.Source, strings.Join(ci.Names, ","), ci.Issuer, ci.NotAfter.Format(time.RFC3339))
	}
	tw.Flush()
	return 0
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"
)

type deadLetter struct {
	EventID    string    `json:"event_id"`
	Backend    string    `json:"backend"`
	Channel    string    `json:"channel"`
	Provider   string    `json:"provider"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error"`
	ReceivedAt time.Time `json:"received_at"`
	DeadAt     time.Time `json:"dead_at"`
}

func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, admin := adminFlags(fs)
	backend := fs.String("backend", "", "only this backend")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "every dead letter (replay, purge)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	c := newAdminClient(*cfgPath, *admin, stderr)
	if c == nil {
		return 1
	}
	q := url.Values{}
	if *backend != "" {
		q.Set("backend", *backend)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "edgerelay dlq %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "list":
		var res struct {
			DeadLetters []deadLetter `json:"dead_letters"`
		}
		if err := c.do("GET", "/api/v1/deadletters", q, &res); err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res.DeadLetters)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT ID\tBACKEND\tCHANNEL\tATTEMPTS\tAGE\tLAST ERROR")
		for _, d := range res.DeadLetters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.EventID, d.Backend, d.Channel, d.Attempts,
				time.Since(d.ReceivedAt).Round(time.Second), d.LastError)
		}
		tw.Flush()
		return 0
	case "show":
		if fs.NArg() != 1 {
			return fail(fmt.Errorf("give one event id"))
		}
		var res json.RawMessage
		if err := c.do("GET", "/api/v1/deadletters/"+url.PathEscape(fs.Arg(0)), nil, &res); err != nil {
			return fail(err)
		}
		stdout.Write(res)
		fmt.Fprintln(stdout)
		return 0
	case "replay", "purge":
		verb := map[string]string{"replay": "replayed", "purge": "purged"}[sub]
		total := 0
		var res map[string]int
		if *all {
			if fs.NArg() > 0 {
				return fail(fmt.Errorf("give ids or -all, not both"))
			}
			if err := c.do("POST", "/api/v1/deadletters/"+sub, q, &res); err != nil {
				return fail(err)
			}
			total = res[verb]
		} else {
			if fs.NArg() == 0 {
				return fail(fmt.Errorf("give event ids or -all"))
			}
			for _, id := range fs.Args() {
				method, path := "POST", "/api/v1/deadletters/"+url.PathEscape(id)+"/replay"
				if sub == "purge" {
					method, path = "DELETE", "/api/v1/deadletters/"+url.PathEscape(id)
				}
				if err := c.do(method, path, q, &res); err != nil {
					return fail(fmt.Errorf("%s: %w", id, err))
				}
				total += res[verb]
			}
		}
		fmt.Fprintf(stdout, "%s %d dead letter(s)\n", verb, total)
		return 0
	}
	fmt.Fprintf(stderr, "edgerelay dlq: unknown subcommand %q\n", sub)
	return 2
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"
)

var quarantineCommand = &command{name: "quarantine", run: cmdQuarantine, usage: `usage: edgerelay quarantine list|show|release|purge ...   callbacks refused for a wrong secret, through the admin API

  quarantine list    [-channel C] [-json]     one line per kept callback, oldest first
  quarantine show    [-json] ID               a kept callback: reason, request, headers, body
  quarantine release -channel C               re-verify C's kept callbacks with its current
                                              secrets; deliver those that pass
  quarantine purge   (ID... | -channel C)     drop kept callbacks

Fix the channel's secret in the configuration and reload (SIGHUP) first:
release verifies each kept callback exactly as a live one, and those that
still fail stay. ID is the first column of quarantine list.
` + adminFlagsUsage}

var quarantineSubcommands = map[string]*command{
	"list": {name: "quarantine list", usage: `usage: edgerelay quarantine list [-channel C] [-json]   list kept callbacks, oldest first
` + adminFlagsUsage},
	"show": {name: "quarantine show", usage: `usage: edgerelay quarantine show [-json] ID   show a kept callback
Headers and body need an operator token; credential headers are always shown redacted.
` + adminFlagsUsage},
	"release": {name: "quarantine release", usage: `usage: edgerelay quarantine release -channel C   re-verify and deliver the kept callbacks of C
` + adminFlagsUsage},
	"purge": {name: "quarantine purge", usage: `usage: edgerelay quarantine purge (ID... | -channel C)   drop kept callbacks
` + adminFlagsUsage},
}

type quarantined struct {
	ID         string              `json:"id"`
	Channel    string              `json:"channel"`
	ReceivedAt time.Time           `json:"received_at"`
	Reason     string              `json:"reason"`
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	RemoteAddr string              `json:"remote_addr"`
	BodyBytes  int                 `json:"body_bytes"`
	Header     map[string][]string `json:"header"`
	Body       []byte              `json:"body"`
}

func cmdQuarantine(cmd *command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cmd.usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, cmd.usage)
		return 0
	}
	sub, ok := quarantineSubcommands[args[0]]
	if !ok {
		return usageError(cmd, stderr, "unknown subcommand %q", args[0])
	}
	fs := newFlagSet(sub, stderr)
	ao := addAdminFlags(fs)
	var channel *string
	asJSON := new(bool)
	switch args[0] {
	case "list":
		channel = fs.String("channel", "", "only the callbacks kept for this channel")
		asJSON = fs.Bool("json", false, "print JSON")
	case "show":
		asJSON = fs.Bool("json", false, "print the admin API's JSON")
	case "release":
		channel = fs.String("channel", "", "the channel whose kept callbacks are released (required)")
	case "purge":
		channel = fs.String("channel", "", "drop every callback kept for this channel")
	}
	if done, code := parseFlags(sub, fs, args[1:], stdout); done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "edgerelay %s: %v\n", sub.name, err)
		return 1
	}
	switch args[0] {
	case "list", "release":
		if fs.NArg() > 0 {
			return usageError(sub, stderr, "unexpected argument %q", fs.Arg(0))
		}
		if args[0] == "release" && *channel == "" {
			return usageError(sub, stderr, "give -channel C")
		}
	case "show":
		if fs.NArg() != 1 {
			return usageError(sub, stderr, "give one id")
		}
	case "purge":
		if *channel != "" && fs.NArg() > 0 {
			return usageError(sub, stderr, "give ids or -channel, not both")
		}
		if *channel == "" && fs.NArg() == 0 {
			return usageError(sub, stderr, "give ids or -channel C")
		}
	}
	c, err := ao.client()
	if err != nil {
		return fail(err)
	}
	q := url.Values{}
	if channel != nil && *channel != "" {
		q.Set("channel", *channel)
	}
	switch args[0] {
	case "list":
		var res struct {
			Quarantined []quarantined `json:"quarantined"`
			Channels    []struct {
				Channel   string `json:"channel"`
				Callbacks int    `json:"callbacks"`
				Bytes     int64  `json:"bytes"`
				Dropped   uint64 `json:"dropped"`
			} `json:"channels"`
		}
		if err := c.do("GET", "/api/v1/quarantine", q, &res); err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if res.Quarantined == nil {
				res.Quarantined = []quarantined{}
			}
			enc.Encode(res.Quarantined)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCHANNEL\tREASON\tAGE\tCLIENT\tREQUEST\tBYTES")
		for _, k := range res.Quarantined {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\t%d\n", k.ID, k.Channel, k.Reason,
				time.Since(k.ReceivedAt).Round(time.Second), k.RemoteAddr, k.Method, k.RequestURI, k.BodyBytes)
		}
		tw.Flush()
		for _, ch := range res.Channels {
			fmt.Fprintf(stdout, "channel %s: %d kept, %d bytes, %d dropped for room\n", ch.Channel, ch.Callbacks, ch.Bytes, ch.Dropped)
		}
		return 0
	case "show":
		var raw json.RawMessage
		if err := c.do("GET", "/api/v1/quarantine/"+url.PathEscape(fs.Arg(0)), nil, &raw); err != nil {
			return fail(err)
		}
		if *asJSON {
			var b bytes.Buffer
			if json.Indent(&b, raw, "", "  ") == nil {
				raw = b.Bytes()
			}
			stdout.Write(bytes.TrimRight(raw, "\n"))
			fmt.Fprintln(stdout)
			return 0
		}
		var res struct {
			Callback quarantined `json:"callback"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return fail(fmt.Errorf("unreadable answer: %v", err))
		}
		printQuarantined(stdout, res.Callback)
		return 0
	case "release":
		var res struct {
			Released     int `json:"released"`
			StillFailing int `json:"still_failing"`
		}
		// Each released callback is made durable before the next (their
		// order is the senders' order): a full quarantine takes a while.
		c.http.Timeout = 15 * time.Minute
		if err := c.do("POST", "/api/v1/quarantine/release", q, &res); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "released %d, still failing %d (kept)\n", res.Released, res.StillFailing)
		return 0
	}
	// purge
	if *channel != "" {
		var res map[string]int
		if err := c.do("POST", "/api/v1/quarantine/purge", q, &res); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "purged %d callback(s)\n", res["purged"])
		return 0
	}
	total := 0
	for _, id := range fs.Args() {
		if err := c.do("DELETE", "/api/v1/quarantine/"+url.PathEscape(id), nil, nil); err != nil {
			fmt.Fprintf(stdout, "purged %d callback(s)\n", total)
			return fail(fmt.Errorf("%s: %w", id, err))
		}
		total++
	}
	fmt.Fprintf(stdout, "purged %d callback(s)\n", total)
	return 0
}

// printQuarantined shows a kept callback for a person.
func printQuarantined(w io.Writer, k quarantined) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", k.ID)
	fmt.Fprintf(tw, "channel\t%s\n", k.Channel)
	fmt.Fprintf(tw, "reason\t%s\n", k.Reason)
	fmt.Fprintf(tw, "received\t%s (%s ago)\n", k.ReceivedAt.UTC().Format(time.RFC3339), time.Since(k.ReceivedAt).Round(time.Second))
	fmt.Fprintf(tw, "client\t%s\n", k.RemoteAddr)
	fmt.Fprintf(tw, "request\t%s %s\n", k.Method, k.RequestURI)
	tw.Flush()
	printHeadersAndBody(w, k.Header, k.Body, k.BodyBytes)
}

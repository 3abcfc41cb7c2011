package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

var dlqCommand = &command{name: "dlq", run: cmdDLQ, usage: `usage: edgerelay dlq list|show|replay|purge ...   dead letters, through the admin API

  dlq list   [-backend B] [-channel C] [-json]   one line per dead letter
  dlq show   [-json] ID                          a dead-lettered event: headers, body, errors
  dlq replay (ID... | -all) [-backend B]         deliver dead letters again
  dlq purge  (ID... | -all) [-backend B]         drop dead letters

ID is the event id (the first column of dlq list). "edgerelay dlq SUBCOMMAND -h"
lists the flags of a subcommand.
` + adminFlagsUsage}

// dlqSubcommands carry their own usage so "dlq list -h" is precise.
var dlqSubcommands = map[string]*command{
	"list": {name: "dlq list", usage: `usage: edgerelay dlq list [-backend B] [-channel C] [-json]   list dead letters, oldest first
` + adminFlagsUsage},
	"show": {name: "dlq show", usage: `usage: edgerelay dlq show [-json] ID   show a dead-lettered event and its dead letters
The body is printed as text (indented when JSON); only a body that is not UTF-8 is printed as base64.
` + adminFlagsUsage},
	"replay": {name: "dlq replay", usage: `usage: edgerelay dlq replay (ID... | -all) [-backend B]   deliver dead letters again
` + adminFlagsUsage},
	"purge": {name: "dlq purge", usage: `usage: edgerelay dlq purge (ID... | -all) [-backend B]   drop dead letters
` + adminFlagsUsage},
}

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

type dlqEvent struct {
	ID              string              `json:"id"`
	Channel         string              `json:"channel"`
	Provider        string              `json:"provider"`
	ProviderEventID string              `json:"provider_event_id"`
	OrderKey        string              `json:"order_key"`
	ReceivedAt      time.Time           `json:"received_at"`
	Method          string              `json:"method"`
	Path            string              `json:"path"`
	Header          map[string][]string `json:"header"`
	Body            []byte              `json:"body"`
	BodySize        int                 `json:"body_size"`
	Backends        []string            `json:"backends"`
}

func cmdDLQ(cmd *command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cmd.usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, cmd.usage)
		return 0
	}
	sub, ok := dlqSubcommands[args[0]]
	if !ok {
		return usageError(cmd, stderr, "unknown subcommand %q", args[0])
	}
	fs := newFlagSet(sub, stderr)
	ao := addAdminFlags(fs)
	backend := fs.String("backend", "", "only the dead letters of this backend")
	var channel *string
	var asJSON, all *bool
	switch args[0] {
	case "list":
		channel = fs.String("channel", "", "only the dead letters of this channel")
		asJSON = fs.Bool("json", false, "print JSON")
	case "show":
		asJSON = fs.Bool("json", false, "print the admin API's JSON")
	case "replay", "purge":
		all = fs.Bool("all", false, "every dead letter (of -backend)")
	}
	if done, code := parseFlags(sub, fs, args[1:], stdout); done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "edgerelay %s: %v\n", sub.name, err)
		return 1
	}
	// Arguments are checked before anything is asked of the relay.
	switch args[0] {
	case "list":
		if fs.NArg() > 0 {
			return usageError(sub, stderr, "unexpected argument %q", fs.Arg(0))
		}
	case "show":
		if fs.NArg() != 1 {
			return usageError(sub, stderr, "give one event id")
		}
	case "replay", "purge":
		if *all && fs.NArg() > 0 {
			return usageError(sub, stderr, "give event ids or -all, not both")
		}
		if !*all && fs.NArg() == 0 {
			return usageError(sub, stderr, "give event ids or -all")
		}
	}
	c, err := ao.client()
	if err != nil {
		return fail(err)
	}
	q := url.Values{}
	if *backend != "" {
		q.Set("backend", *backend)
	}
	switch args[0] {
	case "list":
		if *channel != "" {
			q.Set("channel", *channel)
		}
		if err := c.backendKnown(*backend); err != nil {
			return fail(err)
		}
		var res struct {
			DeadLetters []deadLetter `json:"dead_letters"`
		}
		if err := c.do("GET", "/api/v1/deadletters", q, &res); err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if res.DeadLetters == nil {
				res.DeadLetters = []deadLetter{}
			}
			enc.Encode(res.DeadLetters)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT ID\tBACKEND\tCHANNEL\tATTEMPTS\tAGE\tLAST ERROR")
		for _, d := range res.DeadLetters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.EventID, d.Backend, d.Channel, d.Attempts,
				time.Since(d.ReceivedAt).Round(time.Second), oneLine(d.LastError))
		}
		tw.Flush()
		return 0
	case "show":
		var raw json.RawMessage
		if err := c.do("GET", "/api/v1/deadletters/"+url.PathEscape(fs.Arg(0)), nil, &raw); err != nil {
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
			Event       dlqEvent     `json:"event"`
			DeadLetters []deadLetter `json:"dead_letters"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return fail(fmt.Errorf("unreadable answer: %v", err))
		}
		printEvent(stdout, res.Event, res.DeadLetters)
		return 0
	}
	// replay, purge
	verb := map[string]string{"replay": "replayed", "purge": "purged"}[args[0]]
	if err := c.backendKnown(*backend); err != nil {
		return fail(err)
	}
	total := 0
	if *all {
		var res map[string]int
		if err := c.do("POST", "/api/v1/deadletters/"+args[0], q, &res); err != nil {
			return fail(err)
		}
		total = res[verb]
	} else {
		for _, id := range fs.Args() {
			var res map[string]int
			method, path := "POST", "/api/v1/deadletters/"+url.PathEscape(id)+"/replay"
			if args[0] == "purge" {
				method, path = "DELETE", "/api/v1/deadletters/"+url.PathEscape(id)
			}
			if err := c.do(method, path, q, &res); err != nil {
				fmt.Fprintf(stdout, "%s %d dead letter(s)\n", verb, total)
				return fail(fmt.Errorf("%s: %w", id, err))
			}
			total += res[verb]
		}
	}
	fmt.Fprintf(stdout, "%s %d dead letter(s)\n", verb, total)
	return 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printEvent shows a dead-lettered event for a person: its facts, its dead
// letters, its headers and its body as text.
func printEvent(w io.Writer, ev dlqEvent, dls []deadLetter) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "event\t%s\n", ev.ID)
	fmt.Fprintf(tw, "channel\t%s (provider %s)\n", ev.Channel, ev.Provider)
	if ev.ProviderEventID != "" {
		fmt.Fprintf(tw, "provider event id\t%s\n", ev.ProviderEventID)
	}
	if ev.OrderKey != "" {
		fmt.Fprintf(tw, "order key\t%s\n", ev.OrderKey)
	}
	fmt.Fprintf(tw, "received\t%s (%s ago)\n", ev.ReceivedAt.UTC().Format(time.RFC3339), time.Since(ev.ReceivedAt).Round(time.Second))
	fmt.Fprintf(tw, "request\t%s %s\n", ev.Method, ev.Path)
	fmt.Fprintf(tw, "backends\t%s\n", strings.Join(ev.Backends, ", "))
	tw.Flush()

	fmt.Fprintln(w, "\ndead letters:")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  BACKEND\tATTEMPTS\tDEAD AT\tLAST ERROR")
	for _, d := range dls {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", d.Backend, d.Attempts, d.DeadAt.UTC().Format(time.RFC3339), oneLine(d.LastError))
	}
	tw.Flush()

	printHeadersAndBody(w, ev.Header, ev.Body, ev.BodySize)
}

// printHeadersAndBody prints a stored request's headers and its body as
// text; a viewer's answer has neither, only the body's size.
func printHeadersAndBody(w io.Writer, header map[string][]string, body []byte, size int) {
	if len(header) > 0 {
		fmt.Fprintln(w, "\nheaders:")
		names := make([]string, 0, len(header))
		for k := range header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			for _, v := range header[k] {
				fmt.Fprintf(w, "  %s: %s\n", k, v)
			}
		}
	}
	fmt.Fprintln(w)
	if body == nil && size > 0 {
		fmt.Fprintf(w, "body: %d bytes, not shown (headers and bodies need an operator token)\n", size)
		return
	}
	kind, text := bodyText(body)
	fmt.Fprintf(w, "body (%d bytes, %s):\n%s\n", len(body), kind, text)
}

// bodyText renders a body: indented when it is JSON, as is when it is
// UTF-8 text, base64 otherwise.
func bodyText(body []byte) (kind, text string) {
	if len(body) == 0 {
		return "empty", ""
	}
	if json.Valid(body) {
		var b bytes.Buffer
		if json.Indent(&b, body, "", "  ") == nil {
			return "JSON", b.String()
		}
	}
	if utf8.Valid(body) {
		return "text", strings.TrimRight(string(body), "\n")
	}
	return "binary, base64", base64.StdEncoding.EncodeToString(body)
}

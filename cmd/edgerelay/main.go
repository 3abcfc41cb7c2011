// Command edgerelay is the relay's single binary: it runs the relay,
// validates configurations, simulates provider callbacks and manages dead
// letters through the admin API. See README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

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

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	grace := fs.Duration("shutdown-grace", 20*time.Second, "how long SIGTERM waits for in-flight work")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	srv, err := relay.New(cfg, relay.Options{LogOutput: stderr, ShutdownGrace: *grace})
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay: %v\n", err)
		return 1
	}
	// Signals are the command's business, never the server's.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "edgerelay: %v\n", err)
		srv.Shutdown(context.Background())
		return 1
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_ = srv.Reload() // logged by Reload; the old configuration stays on error
			continue
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), *grace)
			defer cancel()
			done <- srv.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(stderr, "edgerelay: shutdown: %v\n", err)
				return 1
			}
			return 0
		case <-sigs:
			fmt.Fprintln(stderr, "edgerelay: second signal, exiting now")
			return 1
		}
	}
	return 0
}

func cmdSimulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.hcl", "configuration file")
	var o relay.SimulateOptions
	fs.StringVar(&o.Channel, "channel", "", "channel name (required)")
	fs.StringVar(&o.Sample, "sample", "inbound", "sample kind: inbound or status")
	fs.StringVar(&o.BodyFile, "body", "", "send this file's bytes instead of the sample")
	fs.StringVar(&o.URL, "url", "", "send here instead of the channel's listener")
	fs.BoolVar(&o.Insecure, "insecure", false, "do not verify the listener's certificate (self-signed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Channel == "" {
		fmt.Fprintln(stderr, "edgerelay simulate: -channel is required")
		return 2
	}
	cfg := loadConfig(*cfgPath, stderr)
	if cfg == nil {
		return 1
	}
	o.Out = stdout
	res, err := relay.Simulate(cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay simulate: %v\n", err)
		return 1
	}
	if res.Status < 200 || res.Status > 299 {
		return 1
	}
	return 0
}

// adminClient talks to the admin API.
type adminClient struct {
	base  string
	token string // EDGERELAY_ADMIN_TOKEN
	http  *http.Client
}

func adminFlags(fs *flag.FlagSet) (cfgPath, admin *string) {
	return fs.String("config", "", "configuration file (its admin address is used)"),
		fs.String("admin", "", "admin API URL, e.g. http://127.0.0.1:9090")
}

func newAdminClient(cfgPath, admin string, stderr io.Writer) *adminClient {
	base := admin
	if base == "" {
		if cfgPath == "" {
			cfgPath = "config.hcl"
		}
		cfg := loadConfig(cfgPath, stderr)
		if cfg == nil {
			return nil
		}
		host := cfg.Admin.Address
		if strings.HasPrefix(host, "0.0.0.0:") {
			host = "127.0.0.1:" + strings.TrimPrefix(host, "0.0.0.0:")
		}
		base = "http://" + host
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: os.Getenv("EDGERELAY_ADMIN_TOKEN"), http: &http.Client{Timeout: 30 * time.Second}}
}

func (c *adminClient) do(method, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // the admin API refuses other writes
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (%d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
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

func cmdReceive(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9800", "listen address")
	secret := fs.String("secret", "", "backend signing secret (whsec_...) to verify deliveries")
	status := fs.Int("status", 200, "status to answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rc, err := relay.NewReceiver(stdout, *secret, *status)
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "edgerelay receive: listening on %s\n", *addr)
	srv := &http.Server{Addr: *addr, Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(stderr, "edgerelay receive: %v\n", err)
		return 1
	}
	return 0
}

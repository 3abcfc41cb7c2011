// Command bench measures edgerelay's throughput and latency against a
// baseline, side by side in the same run, over loopback.
//
// It is a load tool, not a timed test. Run it from the module root:
//
//	go run ./bench                       # both modes (about two minutes)
//	go run ./bench -mode ingest          # durable ingest against the baseline
//	go run ./bench -mode passthrough     # paced load with a live backend
//	go run ./bench -mode saturate        # closed loop through the relay and through nginx
//	go run ./bench -mode drain -n 1000000  # backlog: memory, restart, drain rate
//
// Saturate mode (-mode saturate [-duration 10s] [-rounds 3]) alternates,
// for -rounds rounds, nginx proxy_pass (when nginx is on the PATH; the
// configuration is generated in the work dir: keep-alive upstream
// connections, access log off) and the relay, each in front of a fresh
// live backend in this process, under the same closed-loop load as ingest
// mode. Every body the backend receives is checked. The relay's figure is
// the lower of its acknowledged and delivered rates over the measured span;
// after the load the bench waits until every acknowledged event has arrived.
// It prints both, the ratio relay/nginx per round and of the medians, and
// the p99 of each.
//
// Drain mode (-mode drain -n N) posts N events to the relay while its
// backend is down (a reserved local port nobody listens on), reads the
// relay's memory with the backlog, stops it (SIGTERM) and starts it again
// on the same data (the time from exec to /readyz 200 is the restart
// figure), then starts the backend on that port and measures the rate from
// its first delivery to its last; every event must arrive byte for byte.
//
// Bus drain modes (-mode drain-nats, drain-kafka or drain-bus for both;
// -bus-n N, default 100000; -rounds R) run a broker inside this process
// (nats-server with JetStream, a file-stored stream; franz-go's kfake, an
// in-memory Kafka) and, per round, (a) a bare client publishing -bus-n
// 1 KB messages to it as fast as it can (nats.go asynchronous JetStream
// publishes with Nats-Msg-Id, at most 4096 pending; franz-go's idempotent
// producer with acks=all, keyed by sender), each with the headers the
// relay puts on the same callback (what it forwards, then X-Relay-Event-Id,
// -Channel, -Provider, -Attempt, -Received-At), so both publish the same
// bytes, and (b) the relay: -bus-n events
// posted while the broker is down (its port closed), then the broker
// started and the rate measured from the first record stored to the last.
// Every record is then read back: once per X-Relay-Event-Id, bodies byte
// for byte. It prints both rates per round, their medians and the ratio.
// With -kafka-brokers the Kafka rounds use a cluster run outside the bench
// (kafka_external.go) instead of kfake.
//
// Ingest mode (-mode ingest [-duration 10s] [-conns 64] [-rounds 3]) loads,
// in alternation for -rounds rounds, (a) a minimal Go server doing the same
// HMAC check on the same body and storing nothing (this binary re-executed
// with the hidden flag -serve-baseline) and (b) the relay binary (built from
// ./cmd/edgerelay into a temporary directory, or -bin PATH). Every run
// starts its server afresh; the relay gets an empty data_dir. The load is
// closed-loop: -conns workers, each with its own keep-alive TCP connection
// (-client http, the default: a net/http client limited to one connection;
// -client raw: requests written by hand, which leaves more CPU to the
// servers and so raises the baseline more than the relay), post a 1 KB
// Meta WhatsApp message (a unique message id per request, so
// de-duplication never turns a request into a no-op) signed with
// X-Hub-Signature-256, after a -warmup that is not measured, and time each
// answer from the first byte written to the last byte read. By default
// (-backend down) the relay's backend is a closed local port: every accepted
// event is made durable and waits on disk, so the figure is the durable
// ingest rate alone; -backend live points it at a sink inside this process,
// so that deliveries compete for the same CPU. The tool prints each run,
// then the medians of the rates and p50/p99 latencies, the ratio
// relay/baseline, the relay's peak RSS (total and anonymous), the queue's
// commits per fsync (from the admin /metrics), and the cores used by the
// server, the load generator and every other process of the machine (a
// busy machine shows there) with the server's CPU time per request. With
// -info-round (default) it runs the relay once more at log level info
// (one log line per callback) and reports that rate; -log-level sets the
// level of the measured runs (default warn). -timeline prints each run per
// 250 ms window, where stalls show.
//
// Passthrough mode (-mode passthrough [-rate 10000] [-pt-duration 20s]) runs
// the relay in front of a live backend inside this process (answering 200
// at once; -backend-concurrency sets the relay's concurrency towards it)
// and offers an open-loop load at -rate events/s (a token bucket shared by
// -conns workers; latency counts from the time a request was due, so a
// stalled server is not hidden). Each second it prints the acknowledged and
// delivered counts, the backlog (pending + in flight, from the admin API)
// and the relay's memory. After the load it waits (at most -drain) until
// every acknowledged event has reached the backend, byte for byte, and
// prints the offered, acknowledged and delivered rates, the backlog's
// maximum and trend (least-squares slope over the load), the missing and
// duplicate counts and the relay's peak RSS. Messages come from -senders
// distinct senders, so per-sender ordering (on by default for Meta) does
// not serialise every delivery.
//
// Every figure is printed as one plain "name: value" line. Lines starting
// with "check" compare a figure with its target (the figures). The
// exit status is 1 when a correctness check fails (an acknowledged event
// never delivered, a body altered), or with -strict when a figure misses
// its target.
//
// -cpuprofile FILE builds the relay with one extra file (through go build
// -overlay: the source tree is untouched) that writes a CPU profile of the
// first loaded relay run to FILE; read it with go tool pprof. -keep keeps
// the temporary directory (configurations, relay logs, data).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line settings.
type options struct {
	mode       string
	duration   time.Duration
	warmup     time.Duration
	conns      int
	rounds     int
	bin        string
	backend    string
	logLevel   string
	infoRound  bool
	rate       int
	ptDuration time.Duration
	drain      time.Duration
	busN       int
	kafkaAt    string
	senders    int
	concurrent int
	strict     bool
	cpuprofile string
	keep       bool
	timeline   bool
	client     string
	n          int

	serveBaseline string
	secret        string
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.mode, "mode", "all", "ingest, passthrough, saturate, drain or all")
	fs.IntVar(&o.n, "n", 1000000, "drain: the backlog's size in events")
	fs.IntVar(&o.busN, "bus-n", 100000, "drain-bus, drain-nats, drain-kafka: the backlog's size in events per round")
	fs.StringVar(&o.kafkaAt, "kafka-brokers", "", "drain-kafka, drain-bus: a Kafka cluster run outside the bench (host:port,…) instead of kfake; the relay bootstraps through a gate the bench closes while the broker is to be down, and every round uses topics of its own")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "load time per server per round (ingest); passthrough uses -pt-duration")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before measuring, per run")
	fs.IntVar(&o.conns, "conns", 64, "concurrent keep-alive connections")
	fs.IntVar(&o.rounds, "rounds", 3, "ingest rounds (baseline and relay each once per round)")
	fs.StringVar(&o.bin, "bin", "", "relay binary (default: build ./cmd/edgerelay into a temporary directory)")
	fs.StringVar(&o.backend, "backend", "down", "ingest: the relay's backend, down (a closed port: pure durable ingest) or live (a sink in this process)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "relay log level for the measured rounds")
	fs.BoolVar(&o.infoRound, "info-round", true, "ingest: one more relay run at log level info")
	fs.IntVar(&o.rate, "rate", 10000, "passthrough: offered events per second")
	fs.DurationVar(&o.ptDuration, "pt-duration", 20*time.Second, "passthrough: load time")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "passthrough: how long to wait for acknowledged events after the load")
	fs.IntVar(&o.senders, "senders", 4096, "distinct WhatsApp senders (order keys)")
	fs.IntVar(&o.concurrent, "backend-concurrency", 32, "passthrough: the relay backend's concurrency")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 also when a figure misses its target")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the first loaded relay run to this file")
	fs.StringVar(&o.client, "client", "http", "load generator: http (net/http, one connection per worker) or raw (hand-written HTTP/1.1, cheaper)")
	fs.BoolVar(&o.timeline, "timeline", false, "ingest: print every run's rate and latency per 250ms window (stalls show up there)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, relay logs)")
	fs.StringVar(&o.serveBaseline, "serve-baseline", "", "internal: serve the baseline on this address")
	fs.StringVar(&o.secret, "secret", benchSecret, "HMAC secret (the Meta app secret)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.serveBaseline != "" {
		if err := serveBaseline(o.serveBaseline, o.secret); err != nil {
			fmt.Fprintf(stderr, "bench baseline: %v\n", err)
			return 1
		}
		return 0
	}
	if o.conns < 1 || o.rounds < 1 || o.n < 1 || o.rate < 1 || o.senders < 1 || o.concurrent < 1 {
		fmt.Fprintln(stderr, "bench: -n, -conns, -rounds, -rate, -senders and -backend-concurrency must be positive")
		return 2
	}
	if o.client != "http" && o.client != "raw" {
		fmt.Fprintln(stderr, "bench: -client must be http or raw")
		return 2
	}
	if o.backend != "down" && o.backend != "live" {
		fmt.Fprintln(stderr, "bench: -backend must be down or live")
		return 2
	}
	env, err := newEnv(o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer env.close()

	failed := false
	switch o.mode {
	case "ingest", "passthrough", "saturate", "drain", "all", "drain-bus", "drain-nats", "drain-kafka":
	default:
		fmt.Fprintf(stderr, "bench: unknown -mode %q (ingest, passthrough, saturate, drain or all)\n", o.mode)
		return 2
	}
	if o.mode == "ingest" || o.mode == "all" {
		ok, err := env.ingest()
		if err != nil {
			fmt.Fprintf(stderr, "bench: ingest: %v\n", err)
			return 1
		}
		failed = failed || !ok
	}
	if o.mode == "passthrough" || o.mode == "all" {
		ok, err := env.passthrough()
		if err != nil {
			fmt.Fprintf(stderr, "bench: passthrough: %v\n", err)
			return 1
		}
		failed = failed || !ok
	}
	if o.mode == "saturate" || o.mode == "all" {
		ok, err := env.saturate()
		if err != nil {
			fmt.Fprintf(stderr, "bench: saturate: %v\n", err)
			return 1
		}
		failed = failed || !ok
	}
	if o.mode == "drain" || o.mode == "all" {
		ok, err := env.drainHTTP()
		if err != nil {
			fmt.Fprintf(stderr, "bench: drain: %v\n", err)
			return 1
		}
		failed = failed || !ok
	}
	if o.mode == "drain-bus" || o.mode == "drain-nats" || o.mode == "drain-kafka" {
		for _, bus := range []string{"nats", "kafka"} {
			if o.mode != "drain-bus" && o.mode != "drain-"+bus {
				continue
			}
			ok, err := env.drainBus(bus)
			if err != nil {
				fmt.Fprintf(stderr, "bench: drain %s: %v\n", bus, err)
				return 1
			}
			failed = failed || !ok
		}
	}
	if failed {
		return 1
	}
	return 0
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// saturateRun is one closed-loop run through a forwarder (nginx or the
// relay) to a live sink.
type saturateRun struct {
	res       *result
	delivered float64 // deliveries per second during the measured span
	missing   int     // acknowledged (warm-up included), never delivered
	acked     int
	dups      int
	bad       int64
	drain     time.Duration // after the load, until every acknowledged event arrived
	peak      memInfo
	fast      string // the relay's share of events delivered from the journal alone
}

// rate is what went through: the lower of the acknowledged and the
// delivered rate (a relay that acknowledges faster than it delivers is
// building a backlog, not passing events through).
func (r *saturateRun) rate() float64 { return min(r.res.rate(), r.delivered) }

// saturate alternates, for -rounds rounds, nginx proxy_pass (when nginx is
// on the PATH) and the relay in front of the same kind of live backend,
// under the same closed-loop load, and compares what goes through.
func (e *env) saturate() (bool, error) {
	o := e.o
	nginx, _ := exec.LookPath("nginx")
	e.printf("== pass-through at saturating load: %d connections (%s client), closed loop, 1 KB Meta callbacks, %s per run (after %s warm-up), %d round(s); a live backend in this process (answers 200 at once, checks every body); relay backend concurrency %d, %d senders",
		o.conns, o.client, o.duration, o.warmup, o.rounds, o.concurrent, o.senders)
	if nginx == "" {
		e.printf("nginx: not on the PATH (apt-get install nginx-light): relay rounds only, no ratio")
	} else {
		e.printf("nginx: %s (proxy_pass to the backend, upstream keep-alive, access log off, worker_processes auto)", nginx)
	}
	var ng, rel []*saturateRun
	for round := 1; round <= o.rounds; round++ {
		order := []string{"nginx", "relay"}
		if round%2 == 0 {
			order = []string{"relay", "nginx"}
		}
		for _, which := range order {
			if which == "nginx" {
				if nginx == "" {
					continue
				}
				r, err := e.saturateNginx(nginx)
				if err != nil {
					return false, err
				}
				ng = append(ng, r)
				e.printf("round %d nginx: %.0f req/s answered, %.0f delivered/s, p50 %s, p99 %s, errors: %s, %s, CPU per request %s",
					round, r.res.rate(), r.delivered, ms(r.res.quantile(.5)), ms(r.res.quantile(.99)), r.res.otherStatuses(), r.res.cpu, r.res.cpu.perRequest(r.rate()))
				continue
			}
			r, err := e.saturateRelay()
			if err != nil {
				return false, err
			}
			rel = append(rel, r)
			e.printf("round %d relay: %.0f events/s acknowledged, %.0f delivered/s, p50 %s, p99 %s, errors: %s, %s, CPU per event %s; after the load %s until all %d acknowledged were delivered (%d missing, %d duplicates, %d altered); peak %s%s",
				round, r.res.rate(), r.delivered, ms(r.res.quantile(.5)), ms(r.res.quantile(.99)), r.res.otherStatuses(), r.res.cpu, r.res.cpu.perRequest(r.rate()),
				r.drain.Round(time.Millisecond), r.acked, r.missing, r.dups, r.bad, r.peak, r.fast)
		}
	}
	rRate := median(rel, func(r *saturateRun) float64 { return r.rate() })
	rP99 := median(rel, func(r *saturateRun) float64 { return float64(r.res.quantile(.99)) })
	rP50 := median(rel, func(r *saturateRun) float64 { return float64(r.res.quantile(.5)) })
	var peak int64
	ok := true
	for _, r := range rel {
		peak = max(peak, r.peak.rss, r.peak.hwm)
		ok = e.check("every acknowledged event delivered", r.missing == 0 && r.acked > 0, "%d missing of %d acknowledged (waited %s)", r.missing, r.acked, r.drain.Round(time.Millisecond)) && ok
		ok = e.check("bodies delivered byte for byte", r.bad == 0, "%d altered or foreign", r.bad) && ok
	}
	e.printf("relay pass-through rate (median, lower of acknowledged and delivered): %.0f events/s", rRate)
	e.printf("relay latency (median): p50 %s, p99 %s", ms(time.Duration(rP50)), ms(time.Duration(rP99)))
	figures := true
	if len(ng) > 0 {
		nRate := median(ng, func(r *saturateRun) float64 { return r.rate() })
		nP99 := median(ng, func(r *saturateRun) float64 { return float64(r.res.quantile(.99)) })
		nP50 := median(ng, func(r *saturateRun) float64 { return float64(r.res.quantile(.5)) })
		var ratios []float64
		for i := range min(len(ng), len(rel)) {
			ratios = append(ratios, rel[i].rate()/ng[i].rate())
		}
		e.printf("nginx rate (median): %.0f req/s", nRate)
		e.printf("nginx latency (median): p50 %s, p99 %s", ms(time.Duration(nP50)), ms(time.Duration(nP99)))
		e.printf("ratio relay/nginx (of medians): %.2f", rRate/nRate)
		e.printf("ratio relay/nginx (per round): %s (median %.2f)", fmtFloats(ratios), medianF(ratios))
		figures = e.check("pass-through vs nginx", rRate/nRate >= targetNginxRatio, "%.2f (target ≥ %.2f)", rRate/nRate, targetNginxRatio) && figures
		figures = e.check("pass-through p99 vs nginx", rP99 <= targetNginxP99*nP99, "%s vs nginx %s: %.2f× (target ≤ %.0f×)", ms(time.Duration(rP99)), ms(time.Duration(nP99)), rP99/nP99, targetNginxP99) && figures
	}
	figures = e.check("relay peak RSS in pass-through", peak <= targetRSS, "%s (target ≤ %s)", mib(peak), mib(targetRSS)) && figures
	return ok && (figures || !o.strict), nil
}

// saturateCapacity is how many messages one run can post at most (the
// sink tracks each): far above what two cores answer in a run.
func (e *env) saturateCapacity() int {
	return int(60000 * (e.o.warmup + e.o.duration + 5*time.Second).Seconds())
}

// saturateLoad runs the closed loop against addr and follows the sink.
func (e *env) saturateLoad(addr string, sk *sink, base uint64, acked []atomic.Bool, p *proc) (*saturateRun, error) {
	o := e.o
	var d0, d1 int64
	stopWatch := p.watchMemory()
	var c0 cpuSnap
	var cpu cpuUse
	res := closedLoopHooks(o.client, addr, o.conns, o.warmup, o.duration, &e.seqs, e.ts, o.senders, false, loopHooks{
		onAck: func(seq uint64) {
			if seq >= base && seq-base < uint64(len(acked)) {
				acked[seq-base].Store(true)
			}
		},
		measuring: func(on bool) {
			if on {
				d0 = sk.total.Load()
				c0 = p.cpuSnap()
			} else {
				d1 = sk.total.Load()
				cpu = usage(c0, p.cpuSnap())
			}
		},
	})
	res.cpu = cpu
	r := &saturateRun{res: res, delivered: float64(d1-d0) / res.elapsed.Seconds()}
	if e.seqs.next.Load() >= base+uint64(len(acked)) {
		return nil, fmt.Errorf("more messages posted than the sink tracks (%d): shorten -duration", len(acked))
	}
	count := func() (acks, missing int) {
		for i := range acked {
			if acked[i].Load() {
				acks++
				if sk.seen[i].Load() == 0 {
					missing++
				}
			}
		}
		return
	}
	end := time.Now()
	r.acked, r.missing = count()
	for r.missing > 0 && time.Since(end) < o.drain {
		time.Sleep(50 * time.Millisecond)
		r.acked, r.missing = count()
	}
	r.drain = time.Since(end)
	time.Sleep(100 * time.Millisecond) // late duplicates
	r.peak = stopWatch()
	for i := range sk.seen {
		if c := sk.seen[i].Load(); c > 1 {
			r.dups += int(c - 1)
		}
	}
	r.bad = sk.bad.Load() + sk.out.Load()
	if p.admin != "" {
		if m, err := e.metrics(p); err == nil && m["edgerelay_queue_commits_total"] > 0 {
			r.fast = fmt.Sprintf("; %.0f%% of events never written to the store (delivered from the journal alone)",
				100*m["edgerelay_queue_store_skipped_total"]/m["edgerelay_queue_commits_total"])
		}
	}
	return r, nil
}

func (e *env) newSaturateSink() (*sink, uint64, []atomic.Bool, error) {
	n := e.saturateCapacity()
	base := e.seqs.next.Load() + 1
	sk, err := newSink(n)
	if err != nil {
		return nil, 0, nil, err
	}
	sk.expect(base, e.ts, e.o.senders)
	return sk, base, make([]atomic.Bool, n), nil
}

func (e *env) saturateRelay() (*saturateRun, error) {
	sk, base, acked, err := e.newSaturateSink()
	if err != nil {
		return nil, err
	}
	defer sk.close()
	p, err := e.startRelay(relaySpec{backendURL: sk.url, concurrency: e.o.concurrent, logLevel: e.o.logLevel, profileFor: e.profileFor(e.o.duration)})
	if err != nil {
		return nil, err
	}
	defer e.finish(p)
	return e.saturateLoad(p.addr, sk, base, acked, p)
}

// nginxConf is the configuration of the nginx round: a plain reverse proxy
// of the bench's channel path to the backend, with keep-alive upstream
// connections (what a tuned nginx in front of a webhook consumer uses).
const nginxConf = `%[5]sworker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    client_max_body_size 3m;
    client_body_buffer_size 16k;
    keepalive_requests 1000000;
    upstream backend {
        server %[3]s;
        keepalive 128;
    }
    server {
        listen %[2]s;
        location = %[4]s {
            proxy_pass http://backend/events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / {
            return 404;
        }
    }
}
`

func (e *env) saturateNginx(bin string) (*saturateRun, error) {
	sk, base, acked, err := e.newSaturateSink()
	if err != nil {
		return nil, err
	}
	defer sk.close()
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	e.runs++
	dir := filepath.Join(e.dir, fmt.Sprintf("nginx-%d", e.runs))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	backend := sk.url[len("http://") : len(sk.url)-len("/events")]
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, ports[0], backend, channelPath, nginxUser()), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "error.log")
	lf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", logPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	p := &proc{name: "nginx", cmd: cmd, addr: ports[0], logPath: logPath, done: make(chan error, 1), tree: true, dir: dir}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	go func() { p.done <- cmd.Wait() }()
	defer func() {
		// SIGQUIT is nginx's graceful stop; stop sends SIGTERM (fast stop) after it.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		p.stop()
	}()
	if err := e.waitHTTP(p, "http://"+p.addr+"/", 404); err != nil {
		return nil, err
	}
	return e.saturateLoad(p.addr, sk, base, acked, p)
}

// nginxUser keeps nginx's workers as root when the bench runs as root (they
// would otherwise become nobody, who cannot enter the private work dir).
func nginxUser() string {
	if os.Geteuid() == 0 {
		return "user root;\n"
	}
	return ""
}

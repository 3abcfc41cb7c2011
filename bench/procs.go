package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is one bench run: its temporary directory, the relay binary and the
// output.
type env struct {
	o        options
	out      io.Writer
	errw     io.Writer
	dir      string
	bin      string
	self     string
	ts       int64
	seqs     seqSource
	runs     int
	profiled bool // the one CPU profile of -cpuprofile has been asked for
	client   *http.Client
}

func newEnv(o options, stdout, stderr io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "edgerelay-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{o: o, out: stdout, errw: stderr, dir: dir, ts: time.Now().Unix(),
		client: &http.Client{Timeout: 5 * time.Second}}
	if e.self, err = os.Executable(); err != nil {
		e.close()
		return nil, fmt.Errorf("finding this executable (for the baseline): %w", err)
	}
	e.bin = o.bin
	if e.bin == "" || o.cpuprofile != "" {
		if e.bin, err = e.build(); err != nil {
			e.close()
			return nil, err
		}
	}
	e.printf("go: %s %s/%s, GOMAXPROCS default, %d CPU(s)", goVersion(), goos(), goarch(), numCPU())
	e.printf("relay binary: %s", e.bin)
	e.printf("work dir: %s", dir)
	return e, nil
}

func (e *env) close() {
	if e.o.keep {
		fmt.Fprintf(e.errw, "bench: kept %s\n", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

func (e *env) printf(format string, args ...any) {
	fmt.Fprintf(e.out, format+"\n", args...)
}

// build compiles ./cmd/edgerelay of the enclosing module (with the CPU
// profile hook when -cpuprofile is set).
func (e *env) build() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("run the bench inside the edgerelay module (or give -bin)")
	}
	bin := filepath.Join(e.dir, "edgerelay")
	args := []string{"build", "-o", bin}
	if e.o.cpuprofile != "" {
		overlay, err := e.profileOverlay(root)
		if err != nil {
			return "", err
		}
		args = append(args, "-overlay", overlay)
	}
	args = append(args, "./cmd/edgerelay")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/edgerelay: %w\n%s", err, out)
	}
	return bin, nil
}

// profileHook is added to package main of the relay by -cpuprofile: it
// profiles the process from EDGERELAY_BENCH_CPUPROFILE_DELAY after start
// for EDGERELAY_BENCH_CPUPROFILE_FOR.
const profileHook = `package main

import (
	"os"
	"runtime/pprof"
	"time"
)

func init() {
	path := os.Getenv("EDGERELAY_BENCH_CPUPROFILE")
	if path == "" {
		return
	}
	delay, _ := time.ParseDuration(os.Getenv("EDGERELAY_BENCH_CPUPROFILE_DELAY"))
	span, _ := time.ParseDuration(os.Getenv("EDGERELAY_BENCH_CPUPROFILE_FOR"))
	go func() {
		time.Sleep(delay)
		f, err := os.Create(path)
		if err != nil {
			return
		}
		if pprof.StartCPUProfile(f) != nil {
			return
		}
		time.Sleep(span)
		pprof.StopCPUProfile()
		f.Close()
	}()
}
`

func (e *env) profileOverlay(root string) (string, error) {
	src := filepath.Join(e.dir, "zz_bench_cpuprofile.go")
	if err := os.WriteFile(src, []byte(profileHook), 0o600); err != nil {
		return "", err
	}
	ov, _ := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, "cmd", "edgerelay", "zz_bench_cpuprofile.go"): src},
	})
	path := filepath.Join(e.dir, "overlay.json")
	return path, os.WriteFile(path, ov, 0o600)
}

// profileFor returns how long the next relay run is to be profiled: d for
// the first loaded run when -cpuprofile is set, else 0.
func (e *env) profileFor(d time.Duration) time.Duration {
	if e.o.cpuprofile == "" || e.profiled {
		return 0
	}
	e.profiled = true
	return d
}

// freePorts returns n distinct loopback addresses nobody listens on right
// now: all are held open until the last is chosen, so the kernel cannot
// hand out the same port twice (a "down" backend that turns out to be the
// relay's own listener would measure something else entirely).
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// proc is a server process under test.
type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    string // the loaded address
	admin   string // relay only
	logPath string
	tree    bool // CPU time includes the child processes (nginx's workers)
	done    chan error
	warn    io.Writer // where stop reports a process that ignored SIGTERM
	dir     string    // the relay's directory (configuration, log, data_dir)
}

// finish stops a relay and frees its data_dir's disk space (unless -keep).
func (e *env) finish(p *proc) {
	p.stop()
	if !e.o.keep && p.dir != "" {
		os.RemoveAll(filepath.Join(p.dir, "data"))
	}
}

// startBaseline re-executes this binary as the baseline server.
func (e *env) startBaseline() (*proc, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := ports[0]
	e.runs++
	logPath := filepath.Join(e.dir, fmt.Sprintf("baseline-%d.log", e.runs))
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(e.self, "-serve-baseline", addr, "-secret", benchSecret)
	cmd.Stdout, cmd.Stderr = lf, lf
	p := &proc{name: "baseline", cmd: cmd, addr: addr, logPath: logPath, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the baseline: %w", err)
	}
	go func() { p.done <- cmd.Wait() }()
	if err := e.waitHTTP(p, "http://"+addr+"/", http.StatusNotFound); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// relaySpec is what varies between relay runs.
type relaySpec struct {
	backendURL  string // "" means a closed local port
	concurrency int
	logLevel    string
	profileFor  time.Duration // with -cpuprofile: profile this long, from a second after start
	// backendExtra is HCL added to the backend block.
	backendExtra string
	// backendDest, when set, replaces the backend's url line (a kafka {}
	// or nats {} block).
	backendDest string
}

// startRelay writes a configuration with a fresh data_dir and starts the
// relay binary on it.
func (e *env) startRelay(rs relaySpec) (*proc, error) {
	// The listener, the admin listener and, when the backend is to be
	// down, a closed port for it: three distinct ports.
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	addr, admin := ports[0], ports[1]
	if rs.backendURL == "" {
		rs.backendURL = "http://" + ports[2] + "/events"
	}
	dest := fmt.Sprintf("url = %q", rs.backendURL)
	if rs.backendDest != "" {
		dest = rs.backendDest
	}
	e.runs++
	dir := filepath.Join(e.dir, fmt.Sprintf("relay-%d", e.runs))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`data_dir = %q

log {
  level  = %q
  format = "json"
}

queue {
  max_size = "16GiB"
}

listener "public" {
  address = %q
}

admin {
  address = %q
}

channel "meta-bench" {
  listener = "public"
  path     = %q
  provider = "meta"
  auth "hmac" {
    secrets = [%q]
  }
  forward_to = ["sink"]
}

backend "sink" {
  %s
  concurrency = %d
  timeout     = "10s"
%s}
`, filepath.Join(dir, "data"), rs.logLevel, addr, admin, channelPath, benchSecret, dest, rs.concurrency, rs.backendExtra)
	cfgPath := filepath.Join(dir, "edgerelay.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "relay.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	return e.launchRelay(&proc{name: "relay", addr: addr, admin: admin, logPath: logPath, warn: e.out, dir: dir}, lf, rs.profileFor)
}

// launchRelay starts the relay binary on the configuration in p.dir,
// logging to lf, and waits until it is ready.
func (e *env) launchRelay(p *proc, lf *os.File, profileFor time.Duration) (*proc, error) {
	cmd := exec.Command(e.bin, "run", "-config", filepath.Join(p.dir, "edgerelay.hcl"), "-shutdown-grace", "5s")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = os.Environ()
	if profileFor > 0 {
		cmd.Env = append(cmd.Env,
			"EDGERELAY_BENCH_CPUPROFILE="+e.o.cpuprofile,
			"EDGERELAY_BENCH_CPUPROFILE_DELAY=1s",
			"EDGERELAY_BENCH_CPUPROFILE_FOR="+profileFor.String())
	}
	p.cmd, p.done = cmd, make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the relay: %w", err)
	}
	go func() { p.done <- cmd.Wait() }()
	if err := e.waitHTTP(p, "http://"+p.admin+"/readyz", http.StatusOK); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// restartRelay starts the relay again on the configuration and data of a
// stopped one and returns it with the time from exec to its first 200 on
// /readyz.
func (e *env) restartRelay(old *proc) (*proc, time.Duration, error) {
	lf, err := os.OpenFile(old.logPath, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	defer lf.Close()
	p := &proc{name: old.name, addr: old.addr, admin: old.admin, logPath: old.logPath, warn: old.warn, dir: old.dir}
	start := time.Now()
	p, err = e.launchRelay(p, lf, 0)
	return p, time.Since(start), err
}

// waitHTTP polls url until it answers want, or the process exits, or 20s.
func (e *env) waitHTTP(p *proc, url string, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", p.name, err, p.logPath, tail(p.logPath))
		default:
		}
		resp, err := e.client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 20s; log %s:\n%s", p.name, p.logPath, tail(p.logPath))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends the process: SIGTERM, then SIGKILL after 10s (and a warning
// line: a relay must stop on SIGTERM).
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		p.done <- <-p.done
		if p.warn != nil {
			fmt.Fprintf(p.warn, "warning: %s did not stop within 10s of SIGTERM; killed (log %s)\n", p.name, p.logPath)
		}
	}
}

// memInfo is a process's memory from /proc/PID/status, in bytes.
type memInfo struct {
	rss, hwm   int64 // resident now, peak
	anon, file int64 // resident anonymous (heap, stacks) and file-backed (mmapped files)
}

func (m memInfo) String() string {
	return fmt.Sprintf("rss %s (anon %s, file %s; peak %s)", mib(m.rss), mib(m.anon), mib(m.file), mib(m.hwm))
}

// watchMemory samples the process's memory every 200ms until stop is
// called, which returns the peaks seen (peak anonymous memory is not in
// /proc; VmHWM covers the total).
func (p *proc) watchMemory() (stop func() memInfo) {
	var peak memInfo
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			m := p.memory()
			peak.rss, peak.anon, peak.file = max(peak.rss, m.rss), max(peak.anon, m.anon), max(peak.file, m.file)
			peak.hwm = max(peak.hwm, m.hwm)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() memInfo {
		close(done)
		<-finished
		return peak
	}
}

// memory reads the process's resident set size and its peak.
func (p *proc) memory() memInfo {
	var m memInfo
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "VmHWM":
			m.hwm = n << 10
		case "RssAnon":
			m.anon = n << 10
		case "RssFile":
			m.file = n << 10
		}
	}
	return m
}

// metrics scrapes the relay's /metrics and returns the unlabelled samples
// and the sums of labelled ones, by metric name.
func (e *env) metrics(p *proc) (map[string]float64, error) {
	resp, err := e.client.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	return m, sc.Err()
}

// backlog is the sum of pending and in-flight deliveries of the relay's
// backends, from the admin API.
func (e *env) backlog(p *proc) (pending, inFlight int, err error) {
	resp, err := e.client.Get("http://" + p.admin + "/api/v1/queues")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Queues []struct {
			Pending  int `json:"pending"`
			InFlight int `json:"in_flight"`
		} `json:"queues"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, 0, err
	}
	for _, q := range v.Queues {
		pending += q.Pending
		inFlight += q.InFlight
	}
	return pending, inFlight, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// clkTck is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clkTck = 100

// cpuSnap is a snapshot of CPU time: the machine's busy time, this
// process's and a server's, in seconds.
type cpuSnap struct {
	at                 time.Time
	busy, self, server float64
}

func (p *proc) cpuSnap() cpuSnap {
	s := cpuSnap{at: time.Now(), self: procCPU("self")}
	if p != nil {
		pid := strconv.Itoa(p.cmd.Process.Pid)
		s.server = procCPU(pid)
		if p.tree {
			for _, c := range childPIDs(pid) {
				s.server += procCPU(c)
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i != 3 && i != 4 && i < 8 {
				s.busy += n / clkTck
			}
		}
	}
	return s
}

// procCPU is the user+system CPU time of /proc/<pid> in seconds.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / clkTck
}

// cpuUse is how many cores each party used between two snapshots.
type cpuUse struct{ server, bench, other float64 }

func usage(a, b cpuSnap) cpuUse {
	el := b.at.Sub(a.at).Seconds()
	if el <= 0 {
		return cpuUse{}
	}
	u := cpuUse{server: (b.server - a.server) / el, bench: (b.self - a.self) / el}
	u.other = max(0, (b.busy-a.busy)/el-u.server-u.bench)
	return u
}

func (u cpuUse) String() string {
	return fmt.Sprintf("cpu: server %.2f, load generator %.2f, other processes %.2f cores", u.server, u.bench, u.other)
}

// perRequest is the server's CPU time per answered request.
func (u cpuUse) perRequest(rate float64) string {
	if rate <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", u.server/rate*1e6)
}

// childPIDs lists the children of process pid (from every thread's
// /proc/PID/task/TID/children).
func childPIDs(pid string) []string {
	var out []string
	tasks, _ := os.ReadDir("/proc/" + pid + "/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + pid + "/task/" + t.Name() + "/children")
		if err == nil {
			out = append(out, strings.Fields(string(b))...)
		}
	}
	return out
}

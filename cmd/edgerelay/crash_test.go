package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// relayBinary builds cmd/edgerelay once per test binary run; the crash test
// needs a real process to SIGKILL, not the relay running inside the test.
type relayBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// builtRelay is shared by the tests of this package that run the binary:
// relayBin builds it on first use and TestMain removes it at the end.
var builtRelay = &relayBinary{}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtRelay.dir != "" {
		os.RemoveAll(builtRelay.dir)
	}
	os.Exit(code)
}

// relayBin returns the path of the built binary, building it on first use.
func relayBin(t *testing.T) string {
	t.Helper()
	b := builtRelay
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "edgerelay-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "edgerelay")
		cmd := exec.Command("go", "build", "-o", b.path, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building the relay: %v", b.err)
	}
	return b.path
}

// freeAddrs returns n distinct loopback addresses that nobody listens on
// right now (all are held until the last is chosen, so none repeats).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

const crashSecret = "crash-test-meta-secret"

// crashBackend records the message ids of the deliveries it receives.
type crashBackend struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func (b *crashBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := messageID(body)
	if id == "" || r.Header.Get("X-Relay-Event-Id") == "" {
		// Not what the clients sent: a permanent failure, so the
		// event becomes a dead letter and the test sees it missing.
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// Some deliveries take a while, so that attempts are in flight when
	// the relay is killed, and the backend (4 at a time, in the
	// configuration) falls behind the clients: a backlog is pending on
	// disk at each kill.
	if c := id[len(id)-1]; c == '0' || c == '5' {
		time.Sleep(10 * time.Millisecond)
	}
	b.mu.Lock()
	b.seen[id]++
	b.total++
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (b *crashBackend) missing(acked map[string]bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for id := range acked {
		if b.seen[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// messageID extracts the crash test's message id from a Meta body.
func messageID(body []byte) string {
	const mark = `"id":"wamid.CRASH`
	i := bytes.Index(body, []byte(mark))
	if i < 0 {
		return ""
	}
	rest := body[i+len(`"id":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// crashBody is a Meta WhatsApp text message with message id id from sender.
func crashBody(id string, sender int) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":`+
		`{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},`+
		`"contacts":[{"profile":{"name":"Crash Test"},"wa_id":"1650555%04d"}],`+
		`"messages":[{"from":"1650555%04d","id":"%s","timestamp":"1749416383","type":"text","text":{"body":"hello %s"}}]},`+
		`"field":"messages"}]}]}`, sender, sender, id, id)
}

func signMeta(body []byte) string {
	m := hmac.New(sha256.New, []byte(crashSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// relayProc is one run of the relay binary.
type relayProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail is the end of the log, enough to read a failure without flooding
// the test output.
func (l *lockedBuffer) Tail() string { return l.TailN(8000) }

// TailN is the last n bytes of the log.
func (l *lockedBuffer) TailN(n int) string {
	s := l.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// startRelay runs `edgerelay run -config cfg` and waits until its admin
// listener answers /healthz.
func startRelay(t *testing.T, bin, cfg, admin string, logs *lockedBuffer) *relayProc {
	t.Helper()
	cmd := exec.Command(bin, "run", "-config", cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the relay: %v", err)
	}
	p := &relayProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("relay exited before it was ready (%v):\n%s", p.err, logs.Tail())
		default:
		}
		resp, err := client.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay not ready after 20s:\n%s", logs.Tail())
	return nil
}

// kill SIGKILLs the relay and waits for it to be gone.
func (p *relayProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay still running 10s after SIGKILL")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("relay did not die of SIGKILL: %v", p.cmd.ProcessState)
	}
}

// crashLoad posts signed unique messages from several clients until stop
// is closed and records the ids that got a 200.
type crashLoad struct {
	url     string
	round   int
	mu      sync.Mutex
	acked   map[string]bool
	n       int // acknowledged in this round
	sent    atomic.Int64
	refused atomic.Int64 // answers other than 200 (none expected while the relay is up)
	failed  atomic.Int64 // transport errors (expected once the relay is killed)
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startLoad(url string, round, clients int, acked map[string]bool) *crashLoad {
	l := &crashLoad{url: url, round: round, acked: acked, stop: make(chan struct{})}
	for c := range clients {
		l.wg.Add(1)
		go l.client(c)
	}
	return l
}

func (l *crashLoad) client(c int) {
	defer l.wg.Done()
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		id := fmt.Sprintf("wamid.CRASH-%d-%02d-%06d", l.round, c, n)
		body := crashBody(id, c*7+n%7)
		req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", signMeta(body))
		l.sent.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			l.failed.Add(1)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			l.mu.Lock()
			l.acked[id] = true
			l.n++
			l.mu.Unlock()
		} else {
			l.refused.Add(1)
		}
		// A modest pace per client keeps the backlog, and the test, short.
		time.Sleep(4 * time.Millisecond)
	}
}

func (l *crashLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// TestCrashLosesNoAcknowledgedEvent SIGKILLs the relay process while
// clients send, restarts it on the same data_dir and checks that every
// callback that got a 200 reaches the backend (duplicates are allowed:
// delivery is at least once). It does so twice in a row.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	bin := relayBin(t)
	be := &crashBackend{seen: map[string]int{}}
	backend := httptest.NewServer(be)
	t.Cleanup(backend.Close)

	dir := t.TempDir()
	addrs := freeAddrs(t, 2)
	listen, admin := addrs[0], addrs[1]
	cfg := filepath.Join(dir, "edgerelay.hcl")
	writeFile(t, cfg, fmt.Sprintf(`data_dir = %q

log {
  level  = "warn"
  format = "text"
}

listener "public" {
  address = %q
}

admin {
  address = %q
}

channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" {
    secrets = [%q]
  }
  forward_to = ["crm"]
}

backend "crm" {
  url         = %q
  concurrency = 4
  retry {
    initial = "50ms"
    max     = "500ms"
  }
}
`, filepath.Join(dir, "data"), listen, admin, crashSecret, backend.URL+"/events"))

	logs := &lockedBuffer{}
	acked := map[string]bool{}
	url := "http://" + listen + "/hooks/meta"
	const clients = 24
	const kills = 2
	proc := startRelay(t, bin, cfg, admin, logs)
	for round := 1; round <= kills; round++ {
		load := startLoad(url, round, clients, acked)
		// Let acknowledged events pile up, some delivered, some not yet,
		// then kill the relay while the clients are still sending.
		waitFor(t, 10*time.Second, func() bool {
			load.mu.Lock()
			defer load.mu.Unlock()
			return load.n >= 400
		}, "400 acknowledged callbacks")
		time.Sleep(300 * time.Millisecond)
		proc.kill(t)
		// The clients keep sending into the dead port for a moment.
		time.Sleep(100 * time.Millisecond)
		load.end()
		if n := load.refused.Load(); n > 0 {
			t.Errorf("round %d: %d callbacks got an answer other than 200 while the relay was up", round, n)
		}
		t.Logf("round %d: sent %d, acknowledged so far %d, transport errors %d (the kill); delivered before the kill %d",
			round, load.sent.Load(), len(acked), load.failed.Load(), be.count())
		proc = startRelay(t, bin, cfg, admin, logs)
		// The killed process left its journal behind: the restart applies it again.
		if n := strings.Count(logs.String(), "journal replayed"); n != round {
			t.Errorf("round %d: %d journal replays logged, want %d:\n%s", round, n, round, logs.Tail())
		}
	}

	var missing []string
	waitFor(t, 30*time.Second, func() bool {
		missing = be.missing(acked)
		return len(missing) == 0
	}, "every acknowledged callback delivered")
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged callbacks never delivered, e.g. %v\nrelay log:\n%s", len(missing), missing[:min(5, len(missing))], logs.Tail())
	}
	be.mu.Lock()
	dups := be.total - len(be.seen)
	unacked := len(be.seen) - len(acked)
	be.mu.Unlock()
	t.Logf("acknowledged %d, delivered %d distinct (%d of them never acknowledged: accepted as the kill cut the answer), %d duplicate deliveries",
		len(acked), len(acked)+unacked, unacked, dups)

	// A clean stop still works after two crashes.
	proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-proc.done:
		if proc.err != nil {
			t.Errorf("relay exited with %v after SIGTERM:\n%s", proc.err, logs.Tail())
		}
	case <-time.After(25 * time.Second):
		// Ask the Go runtime for a goroutine dump of the stuck process.
		proc.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-proc.done:
		case <-time.After(5 * time.Second):
		}
		t.Errorf("relay did not stop within 25s of SIGTERM; its log and goroutines:\n%s", logs.TailN(200000))
	}
}

func (b *crashBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or d passes (the caller checks the
// outcome again where the failure needs detail).
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Logf("gave up waiting %s for %s", d, what)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestValidateBinary runs `edgerelay validate` on a broken file and on the
// example configuration.
func TestValidateBinary(t *testing.T) {
	bin := relayBin(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	writeFile(t, bad, `data_dir = "./data"

listener "public" {
  address = "127.0.0.1"
}

channel "c" {
  listener   = "public"
  path       = "/c"
  provider   = "meta"
  forward_to = ["b"]
}

backend "b" {
  url     = "http://127.0.0.1:9/"
  timeout = "ten seconds"
}
`)
	cmd := exec.Command(bin, "validate", "-config", bad)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("validate on a bad file: err %v, want a non-zero exit\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	diag := stderr.String()
	for _, want := range []string{
		bad + ":4:3: error:",  // address without a port
		bad + ":7:1: error:",  // a channel without an auth block
		bad + ":16:3: error:", // not a duration
	} {
		if !strings.Contains(diag, want) {
			t.Errorf("validate diagnostics lack %q:\n%s", want, diag)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(diag), "\n") {
		if !strings.HasPrefix(line, bad+":") {
			t.Errorf("diagnostic line not in file:line:col form: %q", line)
		}
	}

	example, err := filepath.Abs(filepath.Join("..", "..", "config.hcl.example"))
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(bin, "validate", "-config", example)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("validate config.hcl.example: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "valid") {
		t.Errorf("validate config.hcl.example printed %q, want one summary line", out)
	}
	if stderr.Len() > 0 {
		t.Errorf("validate config.hcl.example wrote to stderr: %s", stderr.String())
	}
}

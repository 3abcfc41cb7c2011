package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// storageConfig is a relay with one Meta channel forwarding to backendURL.
func storageConfig(dataDir, listen, admin, backendURL string) string {
	return fmt.Sprintf(`data_dir = %q

log {
  level  = "info"
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
    max     = "200ms"
  }
}
`, dataDir, listen, admin, crashSecret, backendURL)
}

// paddedBody is a Meta text message whose text makes the event record larger than Badger's
// value threshold, so it is stored in the value log.
func paddedBody(id string, sender int, pad int) []byte {
	return crashBody(id+"-"+strings.Repeat("p", pad), sender)
}

// post sends n signed callbacks (8 at a time) and returns how many got each status.
func post(t *testing.T, url, prefix string, n, pad int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				body := paddedBody(fmt.Sprintf("wamid.CRASH-%s-%06d", prefix, i), int(i%50), pad)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Hub-Signature-256", signMeta(body))
				code := 0
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return codes
}

// stopRelay sends SIGTERM and waits for a clean exit.
func (p *relayProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("relay still running 30s after SIGTERM")
	}
}

// copyTree copies a directory tree (regular files and directories).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hashTree maps every file under dir to its size and SHA-256.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		out[p] = fmt.Sprintf("%d:%s", len(b), hex.EncodeToString(s[:]))
		return nil
	})
	return out
}

// lastNonZero is the offset after the last non-zero byte of a file (its written part).
func lastNonZero(t *testing.T, p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return int64(n)
}

func flip(t *testing.T, p string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func filesLike(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	sort.Strings(m)
	return m
}

// runBin runs the binary to completion (bounded) and returns its exit code and output.
func runBin(t *testing.T, bin string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %s:\n%s", args, timeout, out.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("%v died of %v:\n%s", args, ws.Signal(), out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestCorruptedStorageRefusedAndSalvaged builds real queues (one left by SIGKILL, one by a clean
// stop), damages each kind of file in a copy, and checks that `queue check` and `run` both refuse
// naming the file while every file stays byte for byte as it was; then salvages a damaged value
// log and delivers what it recovered.
func TestCorruptedStorageRefusedAndSalvaged(t *testing.T) {
	bin := relayBin(t)
	root := t.TempDir()
	addrs := freeAddrs(t, 3)
	listen, admin, deadBackend := addrs[0], addrs[1], addrs[2]
	const n = 1500

	// A: the queue a SIGKILL leaves: memtable logs, an unfinished value-log file, the journal.
	crashed := filepath.Join(root, "crashed")
	cfgA := filepath.Join(root, "a.hcl")
	writeFile(t, cfgA, storageConfig(crashed, listen, admin, "http://"+deadBackend+"/events"))
	logs := &lockedBuffer{}
	p := startRelay(t, bin, cfgA, admin, logs)
	if codes := post(t, "http://"+listen+"/hooks/meta", "A", n, 1500); codes[200] != n {
		t.Fatalf("answers %v, want %d × 200", codes, n)
	}
	p.kill(t)
	if code, out := runBin(t, bin, 30*time.Second, "queue", "check", "-config", cfgA); code != 0 {
		t.Fatalf("check of the intact crashed queue: exit %d:\n%s", code, out)
	}

	// B: the same after a restart and a clean stop: tables, finished value-log files, MANIFEST.
	clean := filepath.Join(root, "clean")
	copyTree(t, crashed, clean)
	cfgB := filepath.Join(root, "b.hcl")
	writeFile(t, cfgB, storageConfig(clean, listen, admin, "http://"+deadBackend+"/events"))
	startRelay(t, bin, cfgB, admin, logs).stop(t)
	if code, out := runBin(t, bin, 30*time.Second, "queue", "check", "-config", cfgB); code != 0 {
		t.Fatalf("check of the intact cleanly stopped queue: exit %d:\n%s", code, out)
	}

	type damage struct {
		name string
		base string
		pick func(q string) (file string, off int64)
	}
	mid := func(suffix string, sealed bool) func(q string) (string, int64) {
		return func(q string) (string, int64) {
			fs := filesLike(t, q, suffix)
			var best string
			var size int64
			for _, f := range fs {
				if s := lastNonZero(t, f); s > size {
					best, size = f, s
				}
			}
			if best == "" || size < 4096 {
				t.Fatalf("no %s file with data in %s: %v", suffix, q, fs)
			}
			return best, size / 2
		}
	}
	cases := []damage{
		{"value log being written", crashed, mid(".vlog", false)},
		{"memtable log", crashed, mid(".mem", false)},
		{"journal segment", crashed, func(q string) (string, int64) {
			cp := uint64(0)
			if b, err := os.ReadFile(filepath.Join(q, "journal", "checkpoint")); err == nil && len(b) == 12 {
				cp = binary.BigEndian.Uint64(b)
			}
			for i := range 2 {
				f := filepath.Join(q, "journal", fmt.Sprint(i))
				b, _ := os.ReadFile(f)
				if len(b) > 16 && binary.BigEndian.Uint64(b[8:]) > cp {
					return f, lastNonZero(t, f) / 2
				}
			}
			t.Fatalf("no journal segment to replay in %s", q)
			return "", 0
		}},
		{"finished value log", clean, mid(".vlog", true)},
		{"table", clean, mid(".sst", true)},
		{"MANIFEST", clean, func(q string) (string, int64) {
			// Inside the first change record: magic (8), then length (4), checksum (4), record.
			f := filepath.Join(q, "MANIFEST")
			b, _ := os.ReadFile(f)
			if len(b) < 40 {
				t.Fatalf("MANIFEST of %d bytes", len(b))
			}
			return f, 16 + int64(binary.BigEndian.Uint32(b[8:]))/2
		}},
	}
	var salvageSrc string
	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			data := filepath.Join(root, fmt.Sprintf("damaged%d", i))
			copyTree(t, c.base, data)
			cfg := filepath.Join(root, fmt.Sprintf("damaged%d.hcl", i))
			writeFile(t, cfg, storageConfig(data, listen, admin, "http://"+deadBackend+"/events"))
			file, off := c.pick(filepath.Join(data, "queue"))
			flip(t, file, off, 4)
			before := hashTree(t, data)

			code, out := runBin(t, bin, 60*time.Second, "queue", "check", "-config", cfg)
			if code != 1 || !strings.Contains(out, "DAMAGED "+file) {
				t.Errorf("queue check: exit %d, want 1 and %s named:\n%s", code, file, out)
			}
			code, out = runBin(t, bin, 60*time.Second, "run", "-config", cfg)
			if code == 0 || !strings.Contains(out, file) {
				t.Errorf("run: exit %d, want a refusal naming %s:\n%s", code, file, out)
			}
			after := hashTree(t, data)
			for f, h := range before {
				if after[f] != h {
					t.Errorf("%s changed: %s → %s", f, h, after[f])
				}
			}
			if len(after) != len(before) {
				t.Errorf("files before %d, after %d", len(before), len(after))
			}
			if c.name == "finished value log" {
				salvageSrc = cfg
			}
		})
	}

	// Salvage the queue with a damaged finished value-log file (its journal was checkpointed at
	// the clean stop, so the events are read from the tables and the value log) into a fresh
	// data_dir and deliver what it holds: everything, or all but the event in the damaged entry
	// when no other copy of it was left in an older value-log file.
	if salvageSrc == "" {
		t.Fatal("no damaged queue to salvage")
	}
	salvaged := filepath.Join(root, "salvaged")
	code, out := runBin(t, bin, 60*time.Second, "queue", "salvage", "-config", salvageSrc, "-to", salvaged)
	if code != 0 {
		t.Fatalf("salvage: exit %d:\n%s", code, out)
	}
	t.Logf("salvage: %s", out)
	be := &crashBackend{seen: map[string]int{}}
	backend := httptest.NewServer(be)
	t.Cleanup(backend.Close)
	cfgS := filepath.Join(root, "s.hcl")
	writeFile(t, cfgS, storageConfig(salvaged, listen, admin, backend.URL+"/events"))
	startRelay(t, bin, cfgS, admin, logs)
	waitFor(t, 30*time.Second, func() bool { return be.count() >= n-2 }, "the salvaged events delivered")
	time.Sleep(time.Second) // nothing more arrives
	got := be.count()
	if got < n-2 || got > n {
		t.Fatalf("%d of %d events delivered from the salvaged queue, want all but at most the one or two in the damaged stretch", got, n)
	}
	if !strings.Contains(out, "damaged bytes skipped") {
		t.Errorf("salvage does not report the damaged stretch:\n%s", out)
	}
	if got < n && strings.Contains(out, " 0 values unreadable") {
		t.Errorf("%d events missing but salvage reports no unreadable value:\n%s", n-got, out)
	}
	t.Logf("%d of %d events delivered from the salvaged queue", got, n)
}

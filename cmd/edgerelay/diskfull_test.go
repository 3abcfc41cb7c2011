package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// smallFS mounts a tmpfs of size bytes for the test. tmpfs has the semantics that matter: a
// write (or a write fault in a memory-mapped file) past its size fails (ENOSPC, SIGBUS).
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small file system here (needs root and mount permission): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full and returns its size.
func fill(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10} {
		b := make([]byte, chunk)
		for {
			m, err := f.Write(b)
			n += int64(m)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling: %v", err)
				}
				break
			}
		}
	}
	return n
}

// metric reads one unlabelled metric from the admin listener.
func metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// postOne sends one signed callback and returns the status and Retry-After.
func postOne(url, id string, pad int) (int, string, error) {
	body := paddedBody(id, 1, pad)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", signMeta(body))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// TestDiskFull runs the relay binary on a 128 MiB file system: with the backend down it fills
// up to its reserve and answers 503 + Retry-After (no crash, though the journal has wrapped many
// times); killed and restarted on a disk another file has filled to the last block, it starts,
// answers 503, delivers its backlog once the backend is back, returns to its floor and answers
// 200 again.
func TestDiskFull(t *testing.T) {
	bin := relayBin(t)
	mnt := smallFS(t, 128<<20)
	data := filepath.Join(mnt, "data")
	var down atomic.Bool
	down.Store(true)
	be := &crashBackend{seen: map[string]int{}}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		be.ServeHTTP(w, r)
	}))
	t.Cleanup(backend.Close)
	addrs := freeAddrs(t, 2)
	listen, admin := addrs[0], addrs[1]
	cfg := filepath.Join(t.TempDir(), "relay.hcl")
	writeFile(t, cfg, storageConfig(data, listen, admin, backend.URL+"/events"))
	logs := &lockedBuffer{}
	url := "http://" + listen + "/hooks/meta"
	const pad = 16 << 10

	// 1. Full while running.
	p := startRelay(t, bin, cfg, admin, logs)
	acked := map[string]bool{}
	full := 0
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; full < 20 && i < 20000 && time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("wamid.CRASH-full-%06d", i)
		code, retryAfter, err := postOne(url, id, pad)
		if err != nil {
			t.Fatalf("callback %d: %v (the relay died?)\n%s", i, err, logs.Tail())
		}
		switch code {
		case http.StatusOK:
			acked[paddedID(id, pad)] = true
		case http.StatusServiceUnavailable:
			if retryAfter == "" {
				t.Fatalf("503 without Retry-After")
			}
			full++
		default:
			t.Fatalf("callback %d: status %d", i, code)
		}
	}
	if full == 0 {
		t.Fatalf("no 503 after %d callbacks of 16 KiB on 128 MiB", len(acked))
	}
	select {
	case <-p.done:
		t.Fatalf("relay exited (%v):\n%s", p.err, logs.Tail())
	default:
	}
	var st syscall.Statfs_t
	syscall.Statfs(mnt, &st)
	t.Logf("full while running: %d callbacks acknowledged (%d MiB of bodies), then 503 + Retry-After; %d MiB free; queue %.1f MiB",
		len(acked), len(acked)*pad>>20, int64(st.Bavail)*st.Bsize>>20, metric(t, admin, "edgerelay_queue_size_bytes")/(1<<20))
	if _, err := os.Stat(filepath.Join(data, "queue", "reserve")); err != nil {
		t.Fatalf("no reserve file while running: %v", err)
	}

	// 2. Restart on a full disk.
	p.kill(t)
	filled := fill(t, filepath.Join(mnt, "filler"))
	syscall.Statfs(mnt, &st)
	t.Logf("disk filled by another file (%d MiB); %d KiB free", filled>>20, int64(st.Bavail)*st.Bsize>>10)
	start := time.Now()
	p = startRelay(t, bin, cfg, admin, logs)
	t.Logf("restart on the full disk: ready in %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "released the reserve file") {
		t.Errorf("no release of the reserve file logged:\n%s", logs.Tail())
	}
	if code, _, err := postOne(url, "wamid.CRASH-full-new-0", pad); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("callback on the full disk: %d %v, want 503", code, err)
	}
	before := metric(t, admin, "edgerelay_queue_size_bytes")

	// 3. The backlog drains, the queue returns to its floor and accepts again.
	down.Store(false)
	waitFor(t, 90*time.Second, func() bool { return len(be.missing(acked)) == 0 }, "the backlog delivered")
	if m := be.missing(acked); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged events not delivered:\n%s", len(m), len(acked), logs.TailN(6000))
	}
	waitFor(t, 30*time.Second, func() bool {
		return metric(t, admin, "edgerelay_queue_size_bytes") < 36<<20
	}, "the queue back at its floor")
	after := metric(t, admin, "edgerelay_queue_size_bytes")
	if after >= 36<<20 {
		t.Fatalf("queue still %.1f MiB after its backlog was delivered (%.1f MiB before)", after/(1<<20), before/(1<<20))
	}
	code := 0
	waitFor(t, 10*time.Second, func() bool {
		code, _, _ = postOne(url, "wamid.CRASH-full-new-1", 100)
		return code == http.StatusOK
	}, "a 200 again")
	if code != http.StatusOK {
		t.Fatalf("callback after the drain: %d, want 200\n%s", code, logs.Tail())
	}
	select {
	case <-p.done:
		t.Fatalf("relay exited (%v):\n%s", p.err, logs.Tail())
	default:
	}
	t.Logf("queue %.1f MiB on disk with the backlog, %.1f MiB after it was delivered; live bytes %.0f",
		before/(1<<20), after/(1<<20), metric(t, admin, "edgerelay_queue_live_bytes"))
}

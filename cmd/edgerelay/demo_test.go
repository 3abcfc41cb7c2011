package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoRefusesTakenPorts: make demo with something already listening on
// one of the example's ports stops at once and says which port, instead
// of starting a relay that dies unexplained.
func TestDemoRefusesTakenPorts(t *testing.T) {
	var held net.Listener
	for _, p := range []string{"9090", "8443", "8081", "9800"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err == nil {
			held = ln
			break
		}
	}
	taken := ""
	if held != nil {
		defer held.Close()
		taken = held.Addr().String()
	} else {
		t.Log("every port of the example is already taken on this machine: the demo must refuse anyway")
	}
	tmp := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("demo with a taken port: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "refusing to start: already in use:") || !strings.Contains(string(out), taken) {
		t.Fatalf("demo did not name the taken port %s:\n%s", taken, out)
	}
	if strings.Contains(string(out), "==> building") || time.Since(start) > 30*time.Second {
		t.Fatalf("demo went on before refusing:\n%s", out)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Fatalf("demo left %v in TMPDIR", left)
	}
	// Its output goes to stdout/stderr as streams: "make demo > file 2>&1"
	// keeps all of it (curl -o /dev/stderr would truncate the file).
	src, err := os.ReadFile(filepath.Join("..", "..", "scripts", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), "/dev/stderr") || strings.Contains(string(src), "/dev/stdout") {
		t.Error("demo.sh writes to /dev/stderr or /dev/stdout by path, which truncates a redirected file")
	}
}

package outbound

import (
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"
)

func TestZZDebug(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "hang")
	p, err := New(Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Timeout: 300 * time.Millisecond}, nil, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	relay := startRelay(t, p)
	start := time.Now()
	res, err := http.Get(relay.URL + "/out/bsp/x")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status %d after %v, headers %v, bsp %d", res.StatusCode, time.Since(start), res.Header, bsp.n.Load())
	if res.StatusCode != 504 {
		t.Fail()
	}
}

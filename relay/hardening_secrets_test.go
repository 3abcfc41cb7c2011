package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuthHeadersNeverStored sends callbacks whose credentials sit in
// headers (Infobip's AccountKey for auth "header", Meta's signature for
// auth "hmac") and looks for those values everywhere an event goes: the
// queue's files on disk (journal and value log), the requests the backends
// receive and the admin API's dead letter view (what `dlq show` prints).
func TestAuthHeadersNeverStored(t *testing.T) {
	good, bad := newRecorder(t), newRecorder(t)
	bad.status.Store(400) // every delivery to b1 becomes a dead letter
	const accountKey = "AccountKey-SECRET-4f1c9e0a77"
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "infobip" {
  listener = "public"
  path = "/infobip"
  provider = "infobip"
  auth "header" {
    name   = "AccountKey"
    values = [%q]
  }
  forward_to = ["b0", "b1"]
}
channel "meta" {
  listener = "public"
  path = "/meta"
  provider = "meta"
  auth "hmac" { secrets = [%q] }
  forward_to = ["b0", "b1"]
}
backend "b0" {
  url = %q
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
backend "b1" {
  url = %q
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
`, accountKey, testSecret, good.srv.URL, bad.srv.URL)
	r := startRelayIn(t, dir, cfg)

	send := func(path string, body []byte, h map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s answered %d:\n%s", path, resp.StatusCode, r.logs.String())
		}
	}
	const marker = "kept-header-marker-8d2b"
	const otherKey = "unverified-api-key-SECRET-61"
	ibBody := []byte(`{"results":[{"messageId":"ib-1","from":"4915100000001","to":"4930000000"}]}`)
	send("/infobip", ibBody, map[string]string{"AccountKey": accountKey, "X-Marker": marker, "X-Api-Key": otherKey})
	metaB := metaBody("wamid.secrets", "4915100000002")
	metaSig := sign(testSecret, metaB)
	send("/meta", metaB, map[string]string{"X-Hub-Signature-256": metaSig, "X-Marker": marker})
	secrets := []string{accountKey, metaSig, strings.TrimPrefix(metaSig, "sha256=")}

	waitFor(t, 10*time.Second, "two deliveries and two dead letters", func() bool {
		return len(good.got()) == 2 && r.s.Queue().Stats()["b1"].Dead == 2
	})

	// The backend.
	for _, g := range good.got() {
		if g.Header.Get("X-Marker") != marker {
			t.Errorf("the ordinary header was not forwarded: %v", g.Header)
		}
		for k, vv := range g.Header {
			for _, v := range vv {
				for _, s := range secrets {
					if strings.Contains(v, s) {
						t.Errorf("backend received the credential in %s: %s", k, v)
					}
				}
			}
		}
		if _, ok := g.Header["Accountkey"]; ok {
			t.Errorf("backend received the AccountKey header")
		}
		if _, ok := g.Header["X-Hub-Signature-256"]; ok {
			t.Errorf("backend received the signature header")
		}
	}

	// The admin API (dlq show): credentials absent, credential-looking
	// headers that no auth block read redacted.
	admin := "http://" + r.s.AdminAddr()
	var list struct {
		DeadLetters []DeadLetterJSON `json:"dead_letters"`
	}
	getJSON(t, admin+"/api/v1/deadletters", &list)
	if len(list.DeadLetters) != 2 {
		t.Fatalf("dead letters: %+v", list)
	}
	sawMarker := 0
	for _, dl := range list.DeadLetters {
		raw := getRaw(t, admin+"/api/v1/deadletters/"+dl.EventID)
		for _, s := range append(secrets, otherKey) {
			if strings.Contains(raw, s) {
				t.Errorf("dlq show %s prints a credential %q:\n%s", dl.EventID, s, raw)
			}
		}
		if strings.Contains(raw, marker) {
			sawMarker++
		}
		if strings.Contains(raw, "X-Api-Key") && !strings.Contains(raw, `"[redacted]"`) {
			t.Errorf("X-Api-Key is shown unredacted:\n%s", raw)
		}
	}
	if sawMarker != 2 {
		t.Errorf("dlq show must still show ordinary headers (saw the marker in %d of 2)", sawMarker)
	}

	// The files on disk, after a clean stop (everything flushed).
	r.s.Shutdown(t.Context())
	found := map[string]bool{}
	filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return nil
		}
		if bytes.Contains(b, []byte(marker)) {
			found[marker] = true
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the credential %q", p, s)
			}
		}
		return nil
	})
	if !found[marker] {
		t.Fatalf("the stored headers were not found on disk at all: the search proves nothing")
	}
}

func getRaw(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getRaw(t, url)), v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

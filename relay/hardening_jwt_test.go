package relay

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgerelay/edgerelay/auth"
)

// TestVonageOldTokenRefused: a Vonage-style signed callback whose token
// was issued two years ago and has no exp (a captured callback replayed
// after the de-duplication window) is refused by the profile's default
// max_age; the same callback with a fresh iat is accepted.
func TestVonageOldTokenRefused(t *testing.T) {
	be := newRecorder(t)
	const secret = "vonage-signature-secret-0123456789abcdef"
	r := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "vonage" {
  listener = "public"
  path = "/vonage"
  provider = "vonage"
  reject_status = 503
  auth "jwt" { secrets = [%q] }
  forward_to = ["b0"]
}
backend "b0" { url = %q }
`, secret, be.srv.URL))
	body := []byte(`{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","to":"14155550100","from":"447700900000","timestamp":"2024-01-01T00:00:00Z","status":"delivered"}`)
	send := func(iat time.Time) int {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iat": iat.Unix(), "jti": fmt.Sprint(iat.UnixNano()), "payload_hash": auth.PayloadHash(body),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, r.base+"/vonage", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if st := send(time.Now().AddDate(-2, 0, 0)); st != 503 {
		t.Fatalf("a two-year-old token without exp answered %d, want the channel's reject_status 503", st)
	}
	if !strings.Contains(r.logs.String(), `"reason":"clock_skew"`) {
		t.Errorf("the refusal does not log reason clock_skew:\n%s", r.logs.String())
	}
	if st := send(time.Now().Add(-time.Minute)); st != 200 {
		t.Fatalf("a fresh token answered %d:\n%s", st, r.logs.String())
	}
	waitFor(t, 5*time.Second, "the fresh callback delivered", func() bool { return len(be.got()) == 1 })
}

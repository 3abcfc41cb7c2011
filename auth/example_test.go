package auth_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// A Meta channel: HMAC-SHA256 of the raw body in X-Hub-Signature-256.
func ExampleNewHMAC() {
	cfg := auth.HMACConfig{
		Secrets:   []string{"app-secret"},
		Header:    "X-Hub-Signature-256",
		Algorithm: "sha256",
		Encoding:  "hex",
		Prefix:    "sha256=",
	}
	v, err := auth.NewHMAC(cfg)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"object":"whatsapp_business_account"}`)
	r := &auth.Request{
		Header: http.Header{"X-Hub-Signature-256": {auth.SignHMAC(cfg, "app-secret", body)}},
		Body:   body,
	}
	fmt.Println(v.Verify(r))
	r.Body = []byte(`{"object":"page"}`)
	err = v.Verify(r)
	fmt.Println(auth.ReasonOf(err), err)
	// Output:
	// <nil>
	// bad_signature auth: bad_signature: hmac: sha256 signature in X-Hub-Signature-256 does not match the body
}

// Signing a delivery to a backend with Standard Webhooks headers.
func ExampleWebhookSigner() {
	s, err := auth.NewWebhookSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	h := s.Headers("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(h.Get("webhook-signature"))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

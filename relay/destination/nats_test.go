package destination

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/edgerelay/edgerelay/internal/bustest"
)

func startNATS(t *testing.T, edit func(*server.Options)) *server.Server {
	t.Helper()
	s, err := bustest.NATS(t.TempDir(), 0, edit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func addStream(t *testing.T, nc *nats.Conn, name string, subjects ...string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

func TestNATSPublishHeadersBodiesAndMsgIDDeduplication(t *testing.T) {
	s := startNATS(t, nil)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	addStream(t, nc, "WA", "wa.>")
	n, err := NewNATS(NATSConfig{Servers: []string{s.ClientURL()}, Subject: "wa.{channel}.{provider}", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var batch []Delivery
	for i := 0; i < 200; i++ {
		batch = append(batch, Delivery{Event: testEvent(i, ""), Attempt: 1})
	}
	for i, r := range n.Send(context.Background(), batch) {
		if r.Outcome != Delivered {
			t.Fatalf("%d: %+v", i, r)
		}
	}
	// The same events again (a retry after a lost PubAck): the stream
	// acknowledges them and stores nothing new.
	for i := range batch {
		batch[i].Attempt = 2
	}
	for i, r := range n.Send(context.Background(), batch[:50]) {
		if r.Outcome != Delivered {
			t.Fatalf("again %d: %+v", i, r)
		}
	}
	msgs, err := bustest.ReadStream(context.Background(), nc, "WA")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(batch) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(batch))
	}
	for i, m := range msgs {
		ev := batch[i].Event // one Send: published in batch order
		if m.Subject != "wa.wa.meta" {
			t.Errorf("subject %q", m.Subject)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
			t.Errorf("message %d: Nats-Msg-Id %q, want %q", i, got, ev.ID)
		}
		if got := m.Header.Get(HeaderEventID); got != ev.ID {
			t.Errorf("message %d: %s %q, want %q", i, HeaderEventID, got, ev.ID)
		}
		if !bytes.Equal(m.Data, ev.Body) {
			t.Errorf("message %d: body %q, want %q", i, m.Data, ev.Body)
		}
		for k, want := range map[string]string{"Content-Type": "application/json", HeaderChannel: "wa", HeaderProvider: "meta", HeaderAttempt: "1", HeaderReceivedAt: "2026-01-02T03:04:05.000000006Z"} {
			if got := m.Header.Get(k); got != want {
				t.Errorf("message %d: %s = %q, want %q", i, k, got, want)
			}
		}
	}
}

func TestNATSNoStreamForTheSubject(t *testing.T) {
	s := startNATS(t, nil)
	n, err := NewNATS(NATSConfig{Servers: []string{s.ClientURL()}, Subject: "orphan.{channel}", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitConnected(t, n)
	res := n.Send(context.Background(), []Delivery{{Event: testEvent(1, ""), Attempt: 1}})
	if res[0].Outcome != Retryable || !strings.Contains(res[0].Err, "no JetStream stream") || !strings.Contains(res[0].Err, `"orphan.wa"`) {
		t.Fatalf("%+v", res[0])
	}
}

func waitConnected(t *testing.T, n *NATS) {
	t.Helper()
	for i := 0; i < 100 && !n.nc.IsConnected(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNATSServerDownIsRetryableAndReconnects(t *testing.T) {
	port, err := bustest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	n, err := NewNATS(NATSConfig{Servers: []string{url}, Subject: "wa.x", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	res := n.Send(context.Background(), []Delivery{{Event: testEvent(1, ""), Attempt: 1}})
	if res[0].Outcome != Retryable {
		t.Fatalf("server down: %+v", res[0])
	}
	s, err := bustest.NATS(dir, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	addStream(t, nc, "WA", "wa.>")
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = n.Send(context.Background(), []Delivery{{Event: testEvent(1, ""), Attempt: 2}})
		if res[0].Outcome == Delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after the server came up: %+v", res[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNATSAuthentication(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "relay.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	creds := decentralizedAuth(t)
	cases := []struct {
		name      string
		edit      func(*server.Options)
		good, bad NATSConfig
	}{
		{"credentials_file", creds.edit, NATSConfig{CredentialsFile: creds.good}, NATSConfig{CredentialsFile: creds.bad}},
		{"token", func(o *server.Options) { o.Authorization = "tok-123" }, NATSConfig{Token: "tok-123"}, NATSConfig{Token: "tok-999"}},
		{"user", func(o *server.Options) { o.Username, o.Password = "relay", "pw-123" }, NATSConfig{User: "relay", Password: "pw-123"}, NATSConfig{User: "relay", Password: "pw-999"}},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, NATSConfig{NKeySeedFile: seedFile}, NATSConfig{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startNATS(t, tc.edit)
			cfg := tc.good
			cfg.Servers, cfg.Subject, cfg.Timeout = []string{s.ClientURL()}, "wa.x", 2*time.Second
			n, err := NewNATS(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			waitConnected(t, n)
			addStream(t, n.nc, "WA", "wa.>")
			if res := n.Send(context.Background(), []Delivery{{Event: testEvent(1, ""), Attempt: 1}}); res[0].Outcome != Delivered {
				t.Fatalf("good credentials: %+v", res[0])
			}
			cfg = tc.bad
			cfg.Servers, cfg.Subject, cfg.Timeout = []string{s.ClientURL()}, "wa.x", 2*time.Second
			b, err := NewNATS(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			time.Sleep(200 * time.Millisecond)
			if res := b.Send(context.Background(), []Delivery{{Event: testEvent(2, ""), Attempt: 1}}); res[0].Outcome != Retryable {
				t.Fatalf("bad credentials: %+v", res[0])
			}
		})
	}
}

// natsCreds is a server in operator (JWT) mode and two credentials files:
// good, a user of an account the operator signed (JetStream allowed), and
// bad, a user of an account signed by an operator the server does not trust.
type natsCreds struct {
	edit      func(*server.Options)
	good, bad string
}

func decentralizedAuth(t *testing.T) natsCreds {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// userCreds writes a .creds file for a new user of the account akp.
	userCreds := func(name string, akp nkeys.KeyPair) string {
		ukp, err := nkeys.CreateUser()
		must(err)
		upub, _ := ukp.PublicKey()
		useed, _ := ukp.Seed()
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		ujwt, err := uc.Encode(akp)
		must(err)
		b, err := jwt.FormatUserConfig(ujwt, useed)
		must(err)
		p := filepath.Join(dir, name+".creds")
		must(os.WriteFile(p, b, 0o600))
		return p
	}
	account := func(okp nkeys.KeyPair, js bool) (nkeys.KeyPair, string, string) {
		akp, err := nkeys.CreateAccount()
		must(err)
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		must(err)
		return akp, apub, ajwt
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, _ := okp.PublicKey()
	_, syspub, sysjwt := account(okp, false)
	akp, apub, ajwt := account(okp, true)
	oc := jwt.NewOperatorClaims(opub)
	oc.SystemAccount = syspub
	ojwt, err := oc.Encode(okp)
	must(err)
	op, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)

	other, err := nkeys.CreateOperator()
	must(err)
	strangerKP, _, _ := account(other, true)

	return natsCreds{
		edit: func(o *server.Options) {
			r := &server.MemAccResolver{}
			must(r.Store(apub, ajwt))
			must(r.Store(syspub, sysjwt))
			o.TrustedOperators = []*jwt.OperatorClaims{op}
			o.AccountResolver = r
			o.SystemAccount = syspub
		},
		good: userCreds("relay", akp),
		bad:  userCreds("stranger", strangerKP),
	}
}

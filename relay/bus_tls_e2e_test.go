package relay

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgerelay/edgerelay/internal/bustest"
)

// TestBusBackendsOverTLS: a Kafka cluster requiring TLS and a client
// certificate, and a NATS server on TLS, both with a private CA the relay
// trusts through tls { trust_store, client_cert }.
func TestBusBackendsOverTLS(t *testing.T) {
	caDER, leaf := privateCA(t)
	clientCA := newTestCA(t, "Relay clients")
	cc := clientCA.client(t, "edgerelay")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	keyDER, _ := x509.MarshalECPrivateKey(cc.PrivateKey.(*ecdsa.PrivateKey))
	os.WriteFile(filepath.Join(dir, "relay.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, "relay.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.cert)

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "wa.meta"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{leaf}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ns, err := bustest.NATS(filepath.Join(dir, "nats"), 0, func(o *server.Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{leaf}}
		o.TLS = true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	natsURL := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)
	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	createStreamTLS(t, natsURL, ca)

	cfg := strings.Replace(busConfig(`kafka {
    brokers = ["`+kc.ListenAddrs()[0]+`"]
    topic   = "wa.{provider}"
    tls {
      trust_store = ["ca.pem"]
      client_cert {
        cert_file = "relay.crt"
        key_file  = "relay.key"
      }
    }
  }`), `forward_to = ["bus"]`, `forward_to = ["bus", "js"]`, 1) + `
backend "js" {
  nats {
    servers = ["` + natsURL + `"]
    subject = "wa.{channel}"
    tls { trust_store = ["ca.pem"] }
  }
}
`
	r := startRelayIn(t, dir, cfg)
	sn := &sent{bodies: map[string][]byte{}}
	postSenders(t, r, sn, 2, 0, 5)

	kcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("wa.meta"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca, Certificates: []tls.Certificate{cc}}))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	var got []landed
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 10 && time.Now().Before(deadline) {
		ctx, cancel := contextWithTimeout(2 * time.Second)
		kcl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == "X-Relay-Event-Id" {
					got = append(got, landed{eventID: string(h.Value), body: rec.Value})
				}
			}
		})
		cancel()
	}
	checkLanded(t, sn, got)
	waitFor(t, 20*time.Second, "the NATS stream over TLS", func() bool { return streamMsgsTLS(natsURL, ca) == 10 })
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func createStreamTLS(t *testing.T, url string, ca *x509.CertPool) {
	t.Helper()
	nc, err := nats.Connect(url, nats.Secure(&tls.Config{RootCAs: ca}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WA", Subjects: []string{"wa.>"}}); err != nil {
		t.Fatal(err)
	}
}

func streamMsgsTLS(url string, ca *x509.CertPool) uint64 {
	nc, err := nats.Connect(url, nats.Secure(&tls.Config{RootCAs: ca}))
	if err != nil {
		return 0
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "WA")
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

package outbound_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgerelay/edgerelay/relay/outbound"
)

// Example wires one upstream the way the relay core does: the HCL block as
// a Spec, the proxy mounted through a Router on the internal listener, and
// Update on SIGHUP.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	metrics := outbound.NewMetrics(prometheus.NewRegistry())

	der, _ := os.ReadFile("trust/infobip.der") // trust_store = ["trust/infobip.der"]
	roots := x509.NewCertPool()
	if cert, err := x509.ParseCertificate(der); err == nil {
		roots.AddCert(cert)
	}
	spec := outbound.Spec{
		Name:       "infobip",
		Path:       "/out/infobip/",
		BaseURL:    "https://xyz123.api.infobip.com",
		AllowPaths: []string{"/whatsapp/1/message/*"},
		Timeout:    15 * time.Second,
		TLS:        &tls.Config{RootCAs: roots},
		Inject:     []outbound.Injector{outbound.HeaderInject{Name: "Authorization", Value: "App " + os.Getenv("INFOBIP_API_KEY")}},
		Breaker:    outbound.BreakerSpec{Failures: 5, OpenFor: 30 * time.Second},
	}
	p, err := outbound.New(spec, metrics, log)
	if err != nil {
		log.Error("upstream", "error", err)
		return
	}
	defer p.Close()

	// Not http.ServeMux: it would clean "..", "//" and answer with redirects.
	router := outbound.NewRouter(p)
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: router}
	_ = srv

	// On SIGHUP: rebuild the Spec from the new file and update in place.
	spec.Inject = []outbound.Injector{outbound.HeaderInject{Name: "Authorization", Value: "App rotated"}}
	if err := p.Update(spec); err != nil {
		log.Error("reload refused", "error", err)
	}
}

package relay

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds the relay's Prometheus instruments, registered on the
// Server's own registry (never the global one).
type metrics struct {
	requests         *prometheus.CounterVec
	authFailures     *prometheus.CounterVec
	attempts         *prometheus.CounterVec
	deliveryDuration *prometheus.HistogramVec
	busBatch         *prometheus.HistogramVec
	breakerState     *prometheus.GaugeVec
	deadLetters      *prometheus.CounterVec
	reloads          *prometheus.CounterVec
	certEvents       *prometheus.CounterVec

	quarantineReleased *prometheus.CounterVec

	// reqs caches requests' series: every callback counts in one.
	reqMu sync.RWMutex
	reqs  map[reqKey]prometheus.Counter
}

type reqKey struct {
	channel string
	status  int
}

// request returns the requests counter of a channel and status.
func (m *metrics) request(channel string, status int) prometheus.Counter {
	k := reqKey{channel, status}
	m.reqMu.RLock()
	c := m.reqs[k]
	m.reqMu.RUnlock()
	if c != nil {
		return c
	}
	c = m.requests.WithLabelValues(channel, strconv.Itoa(status))
	m.reqMu.Lock()
	if m.reqs == nil {
		m.reqs = map[reqKey]prometheus.Counter{}
	}
	m.reqs[k] = c
	m.reqMu.Unlock()
	return c
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_requests_total", Help: "Inbound callbacks by channel and answered status.",
		}, []string{"channel", "status"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_auth_failures_total", Help: "Rejected callbacks by channel and reason.",
		}, []string{"channel", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_delivery_attempts_total", Help: "Delivery attempts by backend and result (delivered, failed, rejected).",
		}, []string{"backend", "result"}),
		deliveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgerelay_delivery_duration_seconds", Help: "Duration of delivery attempts by backend.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"backend"}),
		busBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgerelay_bus_batch_size", Help: "Deliveries per batch sent to a Kafka or NATS backend.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, []string{"backend"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgerelay_backend_breaker_state", Help: "Backend circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"backend"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_dead_letters_total", Help: "Deliveries turned into dead letters, by backend and reason.",
		}, []string{"backend", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_config_reloads_total", Help: "Configuration reloads by result (applied, refused).",
		}, []string{"result"}),
		certEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tls_certificate_events_total", Help: "Certificate management events by listener and kind (obtained, renewed, renewal_failed, ...).",
		}, []string{"listener", "kind"}),
		quarantineReleased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_quarantine_released_total", Help: "Quarantined callbacks that passed verification on release and were enqueued, by channel.",
		}, []string{"channel"}),
	}
	reg.MustRegister(m.quarantineReleased, m.requests, m.authFailures, m.attempts, m.deliveryDuration, m.busBatch, m.breakerState,
		m.deadLetters, m.reloads, m.certEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{s: s})
	return m
}

func (m *metrics) certEvent(listener, kind, name string, err error) {
	m.certEvents.WithLabelValues(listener, kind).Inc()
}

// stateCollector reads queue, credential and certificate state at scrape
// time, so nothing has to keep gauges up to date.
type stateCollector struct{ s *Server }

var (
	descDepth    = prometheus.NewDesc("edgerelay_queue_depth", "Pending deliveries by backend (including those waiting for a retry).", []string{"backend"}, nil)
	descInFlight = prometheus.NewDesc("edgerelay_queue_inflight", "Deliveries being attempted by backend.", []string{"backend"}, nil)
	descDead     = prometheus.NewDesc("edgerelay_queue_dead_letters", "Dead letters kept by backend.", []string{"backend"}, nil)
	descOldest   = prometheus.NewDesc("edgerelay_queue_oldest_age_seconds", "Age of the oldest pending event by backend.", []string{"backend"}, nil)
	descSize     = prometheus.NewDesc("edgerelay_queue_size_bytes", "Disk used by the queue.", nil, nil)
	descMaxSize  = prometheus.NewDesc("edgerelay_queue_max_bytes", "Queue size limit (queue.max_size, or the default computed at start); compared with edgerelay_queue_live_bytes.", nil, nil)
	descLive     = prometheus.NewDesc("edgerelay_queue_live_bytes", "Bytes of the event records the queue holds.", nil, nil)
	descCommits  = prometheus.NewDesc("edgerelay_queue_commits_total", "Events made durable.", nil, nil)
	descSyncs    = prometheus.NewDesc("edgerelay_queue_syncs_total", "fsyncs done by the queue (group commit: far fewer than commits under load).", nil, nil)
	descSkipped  = prometheus.NewDesc("edgerelay_queue_store_skipped_total", "Events delivered everywhere while only the queue's journal held them: never written to its store nor read back (compare with edgerelay_queue_commits_total).", nil, nil)
	descCredExp  = prometheus.NewDesc("edgerelay_credential_expiry_seconds", "Seconds until a credential expires (negative: expired).", []string{"owner", "credential"}, nil)
	descCertExp  = prometheus.NewDesc("tls_certificate_expiry_seconds", "Seconds until a served certificate expires.", []string{"listener", "name"}, nil)
	descTrustExp = prometheus.NewDesc("edgerelay_trust_certificate_expiry_seconds", "Seconds until a trust-store or client certificate expires (negative: expired), by owning block and subject.", []string{"owner", "subject"}, nil)

	descQuarantineCallbacks = prometheus.NewDesc("edgerelay_quarantine_callbacks", "Callbacks kept in a channel's quarantine.", []string{"channel"}, nil)
	descQuarantineBytes     = prometheus.NewDesc("edgerelay_quarantine_bytes", "Disk used by a channel's quarantine.", []string{"channel"}, nil)
	descQuarantineDropped   = prometheus.NewDesc("edgerelay_quarantine_dropped_total", "Quarantined callbacks dropped to stay within max_size, by channel.", []string{"channel"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descInFlight, descDead, descOldest, descSize, descMaxSize, descLive, descCommits, descSyncs, descSkipped, descCredExp, descCertExp, descTrustExp,
		descQuarantineCallbacks, descQuarantineBytes, descQuarantineDropped} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	now := time.Now()
	for b, st := range s.q.Stats() {
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(st.Pending), b)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), b)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(st.Dead), b)
		age := 0.0
		if !st.OldestReceivedAt.IsZero() {
			age = now.Sub(st.OldestReceivedAt).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, b)
	}
	ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(s.q.Size()))
	ch <- prometheus.MustNewConstMetric(descMaxSize, prometheus.GaugeValue, float64(s.q.MaxSize()))
	ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(s.q.LiveBytes()))
	commits, syncs := s.q.SyncStats()
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(commits))
	ch <- prometheus.MustNewConstMetric(descSyncs, prometheus.CounterValue, float64(syncs))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(s.q.StoreSkipped()))
	for _, e := range s.expiries() {
		ch <- prometheus.MustNewConstMetric(descCredExp, prometheus.GaugeValue, e.at.Sub(now).Seconds(), e.owner, e.name)
	}
	for _, q := range s.qt.Stats() {
		ch <- prometheus.MustNewConstMetric(descQuarantineCallbacks, prometheus.GaugeValue, float64(q.Callbacks), q.Channel)
		ch <- prometheus.MustNewConstMetric(descQuarantineBytes, prometheus.GaugeValue, float64(q.Bytes), q.Channel)
		ch <- prometheus.MustNewConstMetric(descQuarantineDropped, prometheus.CounterValue, float64(q.Dropped), q.Channel)
	}
	for _, tc := range s.state.Load().cfg.TrustCerts {
		ch <- prometheus.MustNewConstMetric(descTrustExp, prometheus.GaugeValue, tc.NotAfter.Sub(now).Seconds(), tc.Owner, tc.Subject)
	}
	for _, ci := range s.certificates() {
		for _, n := range ci.Names {
			ch <- prometheus.MustNewConstMetric(descCertExp, prometheus.GaugeValue, ci.NotAfter.Sub(now).Seconds(), ci.Listener, n)
		}
	}
}

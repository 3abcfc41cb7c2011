package outbound

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the outbound proxy's Prometheus collectors, shared by every
// upstream of a process (the upstream's name is a label).
type Metrics struct {
	// BreakerState is upstream_breaker_state{upstream}: 0 closed,
	// 1 half-open, 2 open.
	BreakerState *prometheus.GaugeVec
	// Requests is upstream_requests_total{upstream,code}: answers given to
	// internal callers by status code, the relay's own refusals included;
	// "499" counts callers that went away before the answer was complete.
	Requests *prometheus.CounterVec
	// Duration is upstream_request_duration_seconds{upstream}: time from
	// sending a request to the BSP until its response headers arrived (or
	// the exchange failed); requests refused by the relay are not observed.
	Duration *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered). Registering twice on the same registry reuses the collectors
// already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upstream_breaker_state",
			Help: "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upstream_requests_total",
			Help: "Outbound proxy answers to internal callers by upstream and status code.",
		}, []string{"upstream", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "upstream_request_duration_seconds",
			Help:    "Time from sending a request to the BSP until its response headers arrived.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"upstream"}),
	}
	if reg != nil {
		m.BreakerState = register(reg, m.BreakerState)
		m.Requests = register(reg, m.Requests)
		m.Duration = register(reg, m.Duration)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	// Only a programming error (same name, other labels) gets here.
	panic("outbound: registering metrics: " + err.Error())
}

// Forget removes the series of an upstream that no longer exists.
func (m *Metrics) Forget(upstream string) {
	if m == nil {
		return
	}
	m.BreakerState.DeleteLabelValues(upstream)
	m.Requests.DeletePartialMatch(prometheus.Labels{"upstream": upstream})
	m.Duration.DeleteLabelValues(upstream)
}

func (m *Metrics) count(upstream string, code int) {
	if m == nil {
		return
	}
	m.Requests.WithLabelValues(upstream, strconv.Itoa(code)).Inc()
}

func (m *Metrics) observe(upstream string, seconds float64) {
	if m == nil {
		return
	}
	m.Duration.WithLabelValues(upstream).Observe(seconds)
}

func (m *Metrics) breaker(upstream string, state float64) {
	if m == nil {
		return
	}
	m.BreakerState.WithLabelValues(upstream).Set(state)
}

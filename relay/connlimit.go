package relay

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener bounds a listener's open connections, in total and per
// client address, and makes accept errors visible.
//
// A connection over a limit is accepted and closed at once (its file
// descriptor is freed immediately, the client sees a closed connection)
// and counted in edgerelay_connections_refused_total{listener,reason}. An
// accept error (EMFILE "too many open files", ENFILE, ...) is logged at
// WARN (sampled like every warning) and counted in
// edgerelay_accept_errors_total{listener}; net/http then retries with
// backoff.
type limitListener struct {
	net.Listener
	name         string
	max, perIP   int // 0 = no limit
	log          *slog.Logger
	acceptErrors prometheus.Counter
	refused      *prometheus.CounterVec

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

// connMetrics are the listeners' connection counters.
type connMetrics struct {
	acceptErrors *prometheus.CounterVec
	refused      *prometheus.CounterVec
	handoffs     *prometheus.CounterVec
}

func newConnMetrics(reg *prometheus.Registry) *connMetrics {
	m := &connMetrics{
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_accept_errors_total", Help: "Failed accepts (e.g. too many open files) by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgerelay_connections_refused_total", Help: "Connections closed at accept by listener and reason (max_connections, max_connections_per_ip).",
		}, []string{"listener", "reason"}),
	}
	m.handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgerelay_http_handoffs_total", Help: "Connections of a plain listener passed from the callback fast path to net/http, by listener (a request that is not a plain callback: another path, GET, chunked, Expect, HTTP/1.0, a malformed head).",
	}, []string{"listener"})
	reg.MustRegister(m.acceptErrors, m.refused, m.handoffs)
	return m
}

func newLimitListener(ln net.Listener, name string, max, perIP int, log *slog.Logger, m *connMetrics) *limitListener {
	return &limitListener{Listener: ln, name: name, max: max, perIP: perIP, log: log,
		acceptErrors: m.acceptErrors.WithLabelValues(name), refused: m.refused, byIP: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.acceptErrors.Inc()
				l.log.Warn("accept failed", "listener", l.name, "reason", err.Error())
			}
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		l.mu.Lock()
		reason := ""
		switch {
		case l.max > 0 && l.total >= l.max:
			reason = "max_connections"
		case l.perIP > 0 && l.byIP[ip] >= l.perIP:
			reason = "max_connections_per_ip"
		default:
			l.total++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if reason != "" {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // free the socket at once
			}
			c.Close()
			l.refused.WithLabelValues(l.name, reason).Inc()
			l.log.Warn("connection refused", "listener", l.name, "reason", reason, "client", ip)
			continue
		}
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

// open returns the number of connections held.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// CloseWrite half-closes the connection when the network supports it.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// errNoRawConn: the connection under a limitedConn is not a socket.
var errNoRawConn = errors.New("relay: connection has no raw descriptor")

// SyscallConn gives the socket's RawConn, so that the callback fast path
// can write an answer as it awaits the next request (package armed).
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoRawConn
}

func clientIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

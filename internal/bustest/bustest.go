// Package bustest runs real message brokers inside a test or benchmark
// process: nats-server with JetStream (one server or a cluster) and helpers
// to read back what a stream holds. Kafka needs nothing here: franz-go's
// kfake is used directly.
package bustest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS starts one nats-server with JetStream on 127.0.0.1, storing in dir.
// port 0 picks a free port. edit, when not nil, adjusts the options (auth,
// TLS) before the server starts.
func NATS(dir string, port int, edit func(*server.Options)) (*server.Server, error) {
	if port == 0 {
		port = -1
	}
	o := &server.Options{
		ServerName: "n0",
		Host:       "127.0.0.1",
		Port:       port,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   dir,
	}
	if edit != nil {
		edit(o)
	}
	return start(o)
}

func start(o *server.Options) (*server.Server, error) {
	s, err := server.NewServer(o)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server %s not ready", o.ServerName)
	}
	return s, nil
}

// NATSCluster starts n nats-servers with JetStream routed into one cluster,
// each storing under dir, and waits until the cluster has a meta leader.
func NATSCluster(dir string, n int) ([]*server.Server, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var servers []*server.Server
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			NoSigs:     true,
			NoLog:      true,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Cluster:    server.ClusterOpts{Name: "edge", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		}
		s, err := start(o)
		if err != nil {
			Shutdown(servers)
			return nil, err
		}
		servers = append(servers, s)
	}
	// Ready when a meta leader sees every other server current: before
	// that, a replicated stream may be refused ("no suitable peers").
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if s.JetStreamIsLeader() && allPeersCurrent(s, n) {
				return servers, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	Shutdown(servers)
	return nil, fmt.Errorf("nats cluster: no JetStream meta leader with %d current peers after 30s", n)
}

// allPeersCurrent reports whether the meta leader s sees the other n-1
// servers online and caught up.
func allPeersCurrent(s *server.Server, n int) bool {
	info, err := s.Jsz(&server.JSzOptions{})
	if err != nil || info.Meta == nil || len(info.Meta.Replicas) < n-1 {
		return false
	}
	for _, p := range info.Meta.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

// Shutdown stops every server.
func Shutdown(servers []*server.Server) {
	for _, s := range servers {
		s.Shutdown()
	}
}

// URLs lists the client URLs of the servers.
func URLs(servers ...*server.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.ClientURL())
	}
	return out
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Message is one stored JetStream message.
type Message struct {
	Subject string
	Header  nats.Header
	Data    []byte
	Seq     uint64
}

// ReadStream returns every message of stream in sequence order, reading
// with an ordered consumer through nc; it stops once the stream's last
// sequence at the time of the call is reached.
func ReadStream(ctx context.Context, nc *nats.Conn, stream string) ([]Message, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []Message
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			out = append(out, Message{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Seq: md.Sequence.Stream})
			if md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return out, err
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
}

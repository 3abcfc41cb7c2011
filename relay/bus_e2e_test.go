package relay

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgerelay/edgerelay/internal/bustest"
)

// busConfig is a Meta channel forwarding to one backend "bus" with dest
// (a kafka {} or nats {} block).
func busConfig(dest string) string {
	return `
data_dir = "./data"
log { level = "info" }
listener "public" {
  address  = "127.0.0.1:0"
  max_body = "4KiB"
}
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = ["` + testSecret + `"] }
  forward_to = ["bus"]
}
backend "bus" {
  ` + dest + `
  timeout = "2s"
  retry {
    initial = "20ms"
    max     = "300ms"
  }
  breaker {
    failures = 5
    open_for = "300ms"
  }
}
`
}

// sent is what the BSP side posted: body by message id, in order per sender.
type sent struct {
	mu     sync.Mutex
	bodies map[string][]byte
}

// postSenders posts perSender messages from each of senders senders
// (concurrently across senders, in order within one), ids from offset on.
func postSenders(t *testing.T, r *testRelay, sn *sent, senders, offset, perSender int) {
	t.Helper()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := offset; i < offset+perSender; i++ {
				id := fmt.Sprintf("wamid.s%d-%04d", s, i)
				body := metaBody(id, fmt.Sprintf("4917000000%02d", s))
				req, _ := http.NewRequest("POST", r.base+"/hooks/meta", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("post %s: %v %v", id, err, resp)
					return
				}
				resp.Body.Close()
				sn.mu.Lock()
				sn.bodies[id] = body
				sn.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// senderSeq reads sender and sequence number back from a delivered body.
func senderSeq(body []byte) (sender string, seq int) {
	s := string(body)
	i := strings.Index(s, `"id":"wamid.s`)
	fmt.Sscanf(s[i+len(`"id":"wamid.s`):], "%d-%d", new(int), &seq)
	j := strings.Index(s, `"from":"`)
	return s[j+8 : j+20], seq
}

func messageID(body []byte) string {
	s := string(body)
	i := strings.Index(s, `"id":"wamid.`) + len(`"id":"`)
	return s[i : i+strings.IndexByte(s[i:], '"')]
}

// checkLanded checks that every posted message landed exactly once per
// relay event id, byte for byte, and in order per sender within its
// partition or subject (part).
type landed struct {
	eventID, part string
	body          []byte
}

func checkLanded(t *testing.T, sn *sent, got []landed) {
	t.Helper()
	sn.mu.Lock()
	defer sn.mu.Unlock()
	byEvent := map[string]int{}
	byMsg := map[string]int{}
	next := map[string]int{}
	for _, g := range got {
		byEvent[g.eventID]++
		mid := messageID(g.body)
		byMsg[mid]++
		if want, ok := sn.bodies[mid]; !ok || !bytes.Equal(want, g.body) {
			t.Fatalf("event %s: body differs from what was posted (or unknown message %s)", g.eventID, mid)
		}
		sender, seq := senderSeq(g.body)
		k := g.part + "/" + sender
		if seq < next[k] {
			t.Fatalf("sender %s in %s: message %d after %d (out of order)", sender, g.part, seq, next[k]-1)
		}
		next[k] = seq + 1
	}
	for id, n := range byEvent {
		if n != 1 {
			t.Errorf("event %s landed %d times", id, n)
		}
	}
	if len(byMsg) != len(sn.bodies) {
		t.Fatalf("%d distinct messages landed, %d posted", len(byMsg), len(sn.bodies))
	}
	if len(byEvent) != len(got) || len(got) != len(sn.bodies) {
		t.Fatalf("%d records for %d events and %d posted messages", len(got), len(byEvent), len(sn.bodies))
	}
}

func waitLog(t *testing.T, r *testRelay, d time.Duration, what string) {
	t.Helper()
	waitFor(t, d, "log: "+what, func() bool { return strings.Contains(r.logs.String(), what) })
}

// TestKafkaBackendOutageOpensBreakerThenDeliversAll: while every Produce
// fails, the breaker opens; once the brokers answer again every event
// lands, once per X-Relay-Event-Id, byte for byte, in order per sender
// within its partition.
func TestKafkaBackendOutageOpensBreakerThenDeliversAll(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(4, "wa.meta"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var down atomic.Bool
	var refused atomic.Int64
	c.ControlKey(kmsg.Produce.Int16(), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !down.Load() {
			return nil, nil, false
		}
		// The brokers answer every produce with NOT_ENOUGH_REPLICAS (the
		// in-sync replicas are gone) and store nothing.
		refused.Add(1)
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			st.TopicID = rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	brokers := `"` + strings.Join(c.ListenAddrs(), `", "`) + `"`
	r := startRelay(t, busConfig(`kafka {
    brokers = [`+brokers+`]
    topic   = "wa.{provider}"
  }`))
	sn := &sent{bodies: map[string][]byte{}}
	postSenders(t, r, sn, 8, 0, 25)

	down.Store(true)
	postSenders(t, r, sn, 8, 25, 25)
	waitLog(t, r, 20*time.Second, `"to":"open"`)
	if refused.Load() == 0 {
		t.Fatal("no produce request reached the broker during the outage")
	}
	time.Sleep(500 * time.Millisecond)
	down.Store(false)
	postSenders(t, r, sn, 8, 50, 10)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("wa.meta"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []landed
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(got) < len(sn.bodies) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			var id string
			for _, h := range rec.Headers {
				if h.Key == "X-Relay-Event-Id" {
					id = string(h.Value)
				}
			}
			if !strings.HasPrefix(string(rec.Key), "4917") {
				t.Errorf("record key %q: want the sender", rec.Key)
			}
			got = append(got, landed{eventID: id, part: fmt.Sprint(rec.Partition), body: rec.Value})
		})
	}
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	cl.PollFetches(short).EachRecord(func(rec *kgo.Record) { got = append(got, landed{eventID: "extra", body: rec.Value}) })
	checkLanded(t, sn, got)
	if !strings.Contains(r.logs.String(), `"to":"closed"`) {
		t.Error("the breaker never closed again")
	}
}

// readStream reads every message of stream WA through url.
func readStream(t *testing.T, url string) []landed {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Right after a stream leader is killed the cluster may answer an API
	// request with "no responders" until it has elected another: read
	// again until the deadline.
	msgs, err := bustest.ReadStream(ctx, nc, "WA")
	for err != nil && ctx.Err() == nil {
		t.Logf("reading the stream: %v; again", err)
		time.Sleep(200 * time.Millisecond)
		msgs, err = bustest.ReadStream(ctx, nc, "WA")
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []landed
	for _, m := range msgs {
		if m.Header.Get(jetstream.MsgIDHeader) != m.Header.Get("X-Relay-Event-Id") {
			t.Fatalf("Nats-Msg-Id %q differs from X-Relay-Event-Id %q", m.Header.Get(jetstream.MsgIDHeader), m.Header.Get("X-Relay-Event-Id"))
		}
		out = append(out, landed{eventID: m.Header.Get(jetstream.MsgIDHeader), part: m.Subject, body: m.Data})
	}
	return out
}

func streamMsgs(url string) uint64 {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
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

func createStream(t *testing.T, url string, replicas int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WA", Subjects: []string{"wa.>"}, Replicas: replicas, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
}

// TestNATSBackendStreamLeaderKilled: a 3-node cluster with a stream of 3
// replicas; the stream's leader is shut down while deliveries run. Every
// acknowledged event is in the stream exactly once per Nats-Msg-Id, byte
// for byte, in order per sender.
func TestNATSBackendStreamLeaderKilled(t *testing.T) {
	servers, err := bustest.NATSCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer bustest.Shutdown(servers)
	urls := bustest.URLs(servers...)
	createStream(t, urls[0], 3)
	r := startRelay(t, busConfig(`nats {
    servers = ["`+strings.Join(urls, `", "`)+`"]
    subject = "wa.{channel}.{provider}"
  }`))
	sn := &sent{bodies: map[string][]byte{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		postSenders(t, r, sn, 8, 0, 100)
	}()
	waitFor(t, 30*time.Second, "deliveries under way", func() bool { return streamMsgs(urls[0]) >= 150 })
	var killed *server.Server
	for _, s := range servers {
		if s.JetStreamIsStreamLeader("$G", "WA") {
			killed = s
		}
	}
	if killed == nil {
		t.Fatal("no stream leader")
	}
	before := streamMsgs(urls[0])
	killed.Shutdown()
	t.Logf("stream leader %s shut down with %d messages stored", killed.Name(), before)
	<-done
	var alive string
	for _, s := range servers {
		if s != killed {
			alive = s.ClientURL()
		}
	}
	waitFor(t, 60*time.Second, "every event in the stream", func() bool { return streamMsgs(alive) >= uint64(len(sn.bodies)) })
	time.Sleep(300 * time.Millisecond) // a duplicate would show now
	checkLanded(t, sn, readStream(t, alive))
}

// TestNATSBackendOutageAndMissingStream: with no stream for the subject
// the first attempt logs why; with the server down the breaker opens; after
// the server returns everything lands once.
func TestNATSBackendOutageAndMissingStream(t *testing.T) {
	port, err := bustest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := bustest.NATS(dir, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, busConfig(`nats {
    servers = ["`+s.ClientURL()+`"]
    subject = "wa.{channel}"
  }`))
	sn := &sent{bodies: map[string][]byte{}}
	postSenders(t, r, sn, 2, 0, 2)
	waitLog(t, r, 10*time.Second, `no JetStream stream answered for subject \"wa.meta\"`)
	createStream(t, s.ClientURL(), 1)
	postSenders(t, r, sn, 4, 2, 20)
	waitFor(t, 20*time.Second, "first deliveries", func() bool { return streamMsgs(s.ClientURL()) == uint64(4+4*20) })

	s.Shutdown()
	s.WaitForShutdown()
	postSenders(t, r, sn, 4, 22, 20)
	waitLog(t, r, 20*time.Second, `"to":"open"`)
	if s, err = bustest.NATS(dir, port, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	waitFor(t, 30*time.Second, "every event after the outage", func() bool { return streamMsgs(s.ClientURL()) >= uint64(len(sn.bodies)) })
	time.Sleep(300 * time.Millisecond)
	checkLanded(t, sn, readStream(t, s.ClientURL()))
}

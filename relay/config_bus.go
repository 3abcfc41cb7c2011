package relay

import (
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/edgerelay/edgerelay/relay/destination"
)

// Backends on a message bus: the kafka {} and nats {} blocks of a backend.

// KafkaConfig is a backend's kafka {} block.
type KafkaConfig struct {
	Brokers []string
	Topic   string // may hold {channel} and {provider}
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism, Username, Password string
	// TLS is nil without a tls {} block.
	TLS *TrustConfig
}

// NATSConfig is a backend's nats {} block.
type NATSConfig struct {
	Servers         []string
	Subject         string // may hold {channel} and {provider}
	CredentialsFile string
	Token           string
	User, Password  string
	NKeySeedFile    string
	// TLS is nil without a tls {} block.
	TLS *TrustConfig
}

// defaultBusConcurrency is how many deliveries a bus backend has in flight
// by default: enough for large batches from many senders at once.
const defaultBusConcurrency = 2048

type kafkaBlock struct {
	DefRange     hcl.Range       `hcl:",def_range"`
	Brokers      []string        `hcl:"brokers,optional"`
	BrokersRange hcl.Range       `hcl:"brokers,attr_range"`
	Topic        *string         `hcl:"topic,optional"`
	TopicRange   hcl.Range       `hcl:"topic,attr_range"`
	SASL         *kafkaSASLBlock `hcl:"sasl,block"`
	TLS          *busTLSBlock    `hcl:"tls,block"`
}

type kafkaSASLBlock struct {
	DefRange       hcl.Range `hcl:",def_range"`
	Mechanism      *string   `hcl:"mechanism,optional"`
	MechanismRange hcl.Range `hcl:"mechanism,attr_range"`
	Username       *string   `hcl:"username,optional"`
	Password       *string   `hcl:"password,optional"`
}

type natsBlock struct {
	DefRange             hcl.Range    `hcl:",def_range"`
	Servers              []string     `hcl:"servers,optional"`
	ServersRange         hcl.Range    `hcl:"servers,attr_range"`
	Subject              *string      `hcl:"subject,optional"`
	SubjectRange         hcl.Range    `hcl:"subject,attr_range"`
	CredentialsFile      *string      `hcl:"credentials_file,optional"`
	CredentialsFileRange hcl.Range    `hcl:"credentials_file,attr_range"`
	Token                *string      `hcl:"token,optional"`
	TokenRange           hcl.Range    `hcl:"token,attr_range"`
	User                 *string      `hcl:"user,optional"`
	UserRange            hcl.Range    `hcl:"user,attr_range"`
	Password             *string      `hcl:"password,optional"`
	PasswordRange        hcl.Range    `hcl:"password,attr_range"`
	NKeySeedFile         *string      `hcl:"nkey_seed_file,optional"`
	NKeySeedFileRange    hcl.Range    `hcl:"nkey_seed_file,attr_range"`
	TLS                  *busTLSBlock `hcl:"tls,block"`
}

// busTLSBlock is tls {} inside kafka {} or nats {}: the trust attributes
// backends have, in one block whose presence turns TLS on.
type busTLSBlock struct {
	DefRange           hcl.Range        `hcl:",def_range"`
	TrustStore         []string         `hcl:"trust_store,optional"`
	TrustStoreRange    hcl.Range        `hcl:"trust_store,attr_range"`
	TrustStorePassword *string          `hcl:"trust_store_password,optional"`
	TrustSystemRoots   *bool            `hcl:"trust_system_roots,optional"`
	ClientCert         *clientCertBlock `hcl:"client_cert,block"`
}

// destination checks that bb has exactly one of url, kafka {} and nats {}
// and fills in b's. It reports whether the backend is on a bus.
func (v *validator) destination(bb *backendBlock, b *BackendConfig) (bus bool) {
	var set []string
	if bb.URL != nil {
		set = append(set, "url")
	}
	if bb.Kafka != nil {
		set = append(set, "kafka {}")
	}
	if bb.NATS != nil {
		set = append(set, "nats {}")
	}
	switch len(set) {
	case 0:
		v.errorf(bb.DefRange, "backend without a destination", "backend %q needs exactly one of url, kafka {} or nats {}", bb.Name)
		return false
	case 1:
	default:
		rng := bb.DefRange
		switch {
		case bb.NATS != nil:
			rng = bb.NATS.DefRange
		case bb.Kafka != nil:
			rng = bb.Kafka.DefRange
		}
		v.errorf(rng, "more than one destination", "backend %q has %s: a backend has exactly one of url, kafka {} or nats {}", bb.Name, strings.Join(set, " and "))
	}
	switch {
	case bb.URL != nil:
		b.URL = *bb.URL
		v.backendURL(*bb.URL, bb.URLRange)
		return false
	case bb.Kafka != nil:
		b.Kafka = v.kafka(bb.Kafka)
	case bb.NATS != nil:
		b.NATS = v.nats(bb.NATS)
	}
	// What only an HTTP request can carry.
	if bb.Sign != nil {
		v.errorf(bb.Sign.SecretRange, "not for a bus backend", "backend %q: sign {} applies to url backends (consumers of a bus use X-Relay-Event-Id)", bb.Name)
	}
	if len(bb.Inject) > 0 || bb.Headers != nil || bb.PassAuthorization != nil || bb.Proxy != nil {
		v.errorf(bb.DefRange, "not for a bus backend", "backend %q: inject, headers, pass_authorization and proxy apply to url backends (a bus backend authenticates in its kafka {} or nats {} block)", bb.Name)
	}
	if bb.Rate != nil {
		v.errorf(bb.RateRange, "not for a bus backend", "backend %q: rate applies to url backends; a bus takes deliveries at its own pace", bb.Name)
	}
	if len(bb.TrustStore) > 0 || bb.TrustStorePassword != nil || bb.TrustSystemRoots != nil || bb.ClientCert != nil {
		v.errorf(bb.DefRange, "not for a bus backend", "backend %q: put trust_store, trust_system_roots and client_cert in the tls {} block of kafka {} or nats {}", bb.Name)
	}
	return true
}

func (v *validator) kafka(kb *kafkaBlock) *KafkaConfig {
	k := &KafkaConfig{Brokers: kb.Brokers, Topic: str(kb.Topic, "")}
	if len(kb.Brokers) == 0 {
		v.errorf(kb.DefRange, "missing brokers", "kafka {} needs brokers = [\"host:port\", …]")
	}
	for _, br := range kb.Brokers {
		if _, port, err := net.SplitHostPort(br); err != nil || port == "" {
			v.errorf(kb.BrokersRange, "invalid broker", "brokers: %q must be host:port", br)
		}
	}
	v.busTemplate(kb.Topic, kb.TopicRange, kb.DefRange, "topic")
	if s := kb.SASL; s != nil {
		k.SASLMechanism = strings.ToUpper(str(s.Mechanism, ""))
		k.Username, k.Password = str(s.Username, ""), str(s.Password, "")
		ok := false
		for _, m := range destination.SASLMechanisms {
			ok = ok || m == k.SASLMechanism
		}
		if !ok {
			v.errorf(s.MechanismRange, "invalid SASL mechanism", "sasl: mechanism = %q: use %s", str(s.Mechanism, ""), strings.Join(destination.SASLMechanisms, ", "))
			if s.Mechanism == nil {
				v.diags[len(v.diags)-1].Subject = &s.DefRange
			}
		}
		if k.Username == "" || k.Password == "" {
			v.errorf(s.DefRange, "incomplete SASL credentials", "sasl {} needs username and password")
		}
	}
	k.TLS = v.busTLS(kb.TLS)
	return k
}

func (v *validator) nats(nb *natsBlock) *NATSConfig {
	n := &NATSConfig{Servers: nb.Servers, Subject: str(nb.Subject, ""), CredentialsFile: str(nb.CredentialsFile, ""),
		Token: str(nb.Token, ""), User: str(nb.User, ""), Password: str(nb.Password, ""), NKeySeedFile: str(nb.NKeySeedFile, "")}
	if len(nb.Servers) == 0 {
		v.errorf(nb.DefRange, "missing servers", "nats {} needs servers = [\"nats://host:4222\", …]")
	}
	for _, s := range nb.Servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			v.errorf(nb.ServersRange, "invalid server", "servers: %q must be a nats:// or tls:// URL", s)
		} else if u.User != nil {
			v.errorf(nb.ServersRange, "credentials in a URL", "servers: put credentials in user/password, token, credentials_file or nkey_seed_file, not in the URL")
		}
	}
	v.busTemplate(nb.Subject, nb.SubjectRange, nb.DefRange, "subject")
	if n.Subject != "" && (strings.ContainsAny(n.Subject, " \t*>") || strings.HasPrefix(n.Subject, ".") || strings.HasSuffix(n.Subject, ".") || strings.Contains(n.Subject, "..")) {
		v.errorf(nb.SubjectRange, "invalid subject", "subject %q: a publish subject has no spaces, wildcards (* >) or empty tokens", n.Subject)
	}
	var auths []string
	var last hcl.Range
	for _, a := range []struct {
		set  bool
		name string
		rng  hcl.Range
	}{
		{nb.CredentialsFile != nil, "credentials_file", nb.CredentialsFileRange},
		{nb.Token != nil, "token", nb.TokenRange},
		{nb.User != nil || nb.Password != nil, "user/password", nb.UserRange},
		{nb.NKeySeedFile != nil, "nkey_seed_file", nb.NKeySeedFileRange},
	} {
		if a.set {
			auths = append(auths, a.name)
			last = a.rng
		}
	}
	if len(auths) > 1 {
		v.errorf(last, "more than one NATS credential", "nats {}: use one of credentials_file, token, user + password or nkey_seed_file, not %s", strings.Join(auths, " and "))
	}
	if (nb.User != nil) != (nb.Password != nil) {
		rng := nb.UserRange
		if nb.User == nil {
			rng = nb.PasswordRange
		}
		v.errorf(rng, "incomplete NATS credentials", "nats {}: user and password go together")
	}
	if n.CredentialsFile != "" {
		n.CredentialsFile = resolvePath(v.dir, n.CredentialsFile)
		v.readable(n.CredentialsFile, nb.CredentialsFileRange, "credentials_file")
	}
	if n.NKeySeedFile != "" {
		n.NKeySeedFile = resolvePath(v.dir, n.NKeySeedFile)
		v.readable(n.NKeySeedFile, nb.NKeySeedFileRange, "nkey_seed_file")
	}
	n.TLS = v.busTLS(nb.TLS)
	return n
}

func (v *validator) readable(path string, rng hcl.Range, what string) {
	if f, err := os.Open(path); err != nil {
		v.errorf(rng, "unreadable file", "%s: %v", what, err)
	} else {
		f.Close()
	}
}

func (v *validator) busTemplate(s *string, rng, def hcl.Range, what string) {
	if s == nil || *s == "" {
		v.errorf(def, "missing "+what, "needs %s = \"…\" (placeholders {channel} and {provider})", what)
		return
	}
	if bad := destination.UnknownPlaceholders(*s); len(bad) > 0 {
		v.errorf(rng, "unknown placeholder", "%s %q: %s is not a placeholder (use {channel} and {provider})", what, *s, strings.Join(bad, ", "))
	}
}

func (v *validator) busTLS(tb *busTLSBlock) *TrustConfig {
	if tb == nil {
		return nil
	}
	tc := v.trust(tb.TrustStore, tb.TrustStoreRange, tb.TrustStorePassword, tb.TrustSystemRoots, tb.ClientCert)
	return &tc
}

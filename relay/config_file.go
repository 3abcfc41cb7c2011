package relay

import "github.com/hashicorp/hcl/v2"

// This file holds the shape of the HCL file as gohcl decodes it. Every
// optional attribute is a pointer (nil = not written, so the default
// applies) and every attribute a semantic check may complain about keeps
// its range, so diagnostics point at file:line:col. Nothing here is used at
// run time: config.go turns these into the immutable Config snapshot.

type fileConfig struct {
	DataDir      string    `hcl:"data_dir"`
	DataDirRange hcl.Range `hcl:"data_dir,attr_range"`

	Log       *logBlock       `hcl:"log,block"`
	Queue     *queueBlock     `hcl:"queue,block"`
	Listeners []listenerBlock `hcl:"listener,block"`
	Admin     *adminBlock     `hcl:"admin,block"`
	Channels  []channelBlock  `hcl:"channel,block"`
	Backends  []backendBlock  `hcl:"backend,block"`
	Upstreams []upstreamBlock `hcl:"upstream,block"`
}

type logBlock struct {
	Level       *string   `hcl:"level,optional"`
	LevelRange  hcl.Range `hcl:"level,attr_range"`
	Format      *string   `hcl:"format,optional"`
	FormatRange hcl.Range `hcl:"format,attr_range"`
}

type queueBlock struct {
	MaxSize         *string   `hcl:"max_size,optional"`
	MaxSizeRange    hcl.Range `hcl:"max_size,attr_range"`
	Retain          *string   `hcl:"retain,optional"`
	RetainRange     hcl.Range `hcl:"retain,attr_range"`
	GCInterval      *string   `hcl:"gc_interval,optional"`
	GCIntervalRange hcl.Range `hcl:"gc_interval,attr_range"`
}

type listenerBlock struct {
	Name     string    `hcl:"name,label"`
	DefRange hcl.Range `hcl:",def_range"`

	Address             string    `hcl:"address"`
	AddressRange        hcl.Range `hcl:"address,attr_range"`
	MaxBody             *string   `hcl:"max_body,optional"`
	MaxBodyRange        hcl.Range `hcl:"max_body,attr_range"`
	ReadTimeout         *string   `hcl:"read_timeout,optional"`
	ReadTimeoutRange    hcl.Range `hcl:"read_timeout,attr_range"`
	WriteTimeout        *string   `hcl:"write_timeout,optional"`
	WriteTimeoutRange   hcl.Range `hcl:"write_timeout,attr_range"`
	IdleTimeout         *string   `hcl:"idle_timeout,optional"`
	IdleTimeoutRange    hcl.Range `hcl:"idle_timeout,attr_range"`
	TrustedProxies      []string  `hcl:"trusted_proxies,optional"`
	TrustedProxiesRange hcl.Range `hcl:"trusted_proxies,attr_range"`
	MaxConns            *int      `hcl:"max_connections,optional"`
	MaxConnsRange       hcl.Range `hcl:"max_connections,attr_range"`
	MaxConnsPerIP       *int      `hcl:"max_connections_per_ip,optional"`
	MaxConnsPerIPRange  hcl.Range `hcl:"max_connections_per_ip,attr_range"`
	TLS                 *tlsBlock `hcl:"tls,block"`
}

type tlsBlock struct {
	DefRange hcl.Range `hcl:",def_range"`

	ACME                  *acmeBlock `hcl:"acme,block"`
	CertFile              *string    `hcl:"cert_file,optional"`
	CertFileRange         hcl.Range  `hcl:"cert_file,attr_range"`
	KeyFile               *string    `hcl:"key_file,optional"`
	KeyFileRange          hcl.Range  `hcl:"key_file,attr_range"`
	SelfSigned            *bool      `hcl:"self_signed,optional"`
	SelfSignedRange       hcl.Range  `hcl:"self_signed,attr_range"`
	Names                 []string   `hcl:"names,optional"`
	ClientCA              []string   `hcl:"client_ca,optional"`
	ClientCARange         hcl.Range  `hcl:"client_ca,attr_range"`
	ClientCAPassword      *string    `hcl:"client_ca_password,optional"`
	MinVersion            *string    `hcl:"min_version,optional"`
	MinVersionRange       hcl.Range  `hcl:"min_version,attr_range"`
	HTTPChallengeAddress  *string    `hcl:"http_challenge_address,optional"`
	HTTPChallengeAddrRang hcl.Range  `hcl:"http_challenge_address,attr_range"`
}

type acmeBlock struct {
	DefRange        hcl.Range `hcl:",def_range"`
	Domains         []string  `hcl:"domains"`
	DomainsRange    hcl.Range `hcl:"domains,attr_range"`
	Email           *string   `hcl:"email,optional"`
	CA              *string   `hcl:"ca,optional"`
	CARange         hcl.Range `hcl:"ca,attr_range"`
	CARoots         []string  `hcl:"ca_roots,optional"`
	CARootsRange    hcl.Range `hcl:"ca_roots,attr_range"`
	Challenges      []string  `hcl:"challenges,optional"`
	ChallengesRange hcl.Range `hcl:"challenges,attr_range"`
	Storage         *string   `hcl:"storage,optional"`
}

type adminBlock struct {
	DefRange           hcl.Range         `hcl:",def_range"`
	Address            *string           `hcl:"address,optional"`
	AddressRange       hcl.Range         `hcl:"address,attr_range"`
	Tokens             []adminTokenBlock `hcl:"token,block"`
	Hosts              []string          `hcl:"hosts,optional"`
	HostsRange         hcl.Range         `hcl:"hosts,attr_range"`
	MetricsPublic      *bool             `hcl:"metrics_public,optional"`
	MetricsPublicRange hcl.Range         `hcl:"metrics_public,attr_range"`
	TLS                *adminTLSBlock    `hcl:"tls,block"`
}

type adminTokenBlock struct {
	Name       string    `hcl:"name,label"`
	NameRange  hcl.Range `hcl:"name,label_range"`
	DefRange   hcl.Range `hcl:",def_range"`
	Value      *string   `hcl:"value,optional"`
	ValueRange hcl.Range `hcl:"value,attr_range"`
	Role       *string   `hcl:"role,optional"`
	RoleRange  hcl.Range `hcl:"role,attr_range"`
}

type adminTLSBlock struct {
	DefRange         hcl.Range `hcl:",def_range"`
	CertFile         *string   `hcl:"cert_file,optional"`
	CertFileRange    hcl.Range `hcl:"cert_file,attr_range"`
	KeyFile          *string   `hcl:"key_file,optional"`
	KeyFileRange     hcl.Range `hcl:"key_file,attr_range"`
	ClientCA         []string  `hcl:"client_ca,optional"`
	ClientCARange    hcl.Range `hcl:"client_ca,attr_range"`
	ClientCAPassword *string   `hcl:"client_ca_password,optional"`
	MinVersion       *string   `hcl:"min_version,optional"`
	MinVersionRange  hcl.Range `hcl:"min_version,attr_range"`
}

type channelBlock struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Listener            string           `hcl:"listener"`
	ListenerRange       hcl.Range        `hcl:"listener,attr_range"`
	Path                string           `hcl:"path"`
	PathRange           hcl.Range        `hcl:"path,attr_range"`
	Provider            *string          `hcl:"provider,optional"`
	ProviderRange       hcl.Range        `hcl:"provider,attr_range"`
	Auth                []authBlock      `hcl:"auth,block"`
	Methods             []string         `hcl:"methods,optional"`
	MethodsRange        hcl.Range        `hcl:"methods,attr_range"`
	VerifyToken         *string          `hcl:"verify_token,optional"`
	PublicURL           *string          `hcl:"public_url,optional"`
	PublicURLRange      hcl.Range        `hcl:"public_url,attr_range"`
	Ordering            *string          `hcl:"ordering,optional"`
	OrderingRange       hcl.Range        `hcl:"ordering,attr_range"`
	DedupeWindow        *string          `hcl:"dedupe_window,optional"`
	DedupeWindowRange   hcl.Range        `hcl:"dedupe_window,attr_range"`
	RejectStatus        *int             `hcl:"reject_status,optional"`
	RejectStatusRange   hcl.Range        `hcl:"reject_status,attr_range"`
	EventIDHeader       *string          `hcl:"event_id_header,optional"`
	OrderKeyHeader      *string          `hcl:"order_key_header,optional"`
	ClientNames         []string         `hcl:"client_names,optional"`
	ClientNamesRange    hcl.Range        `hcl:"client_names,attr_range"`
	ForwardTo           []string         `hcl:"forward_to,optional"`
	ForwardToRange      hcl.Range        `hcl:"forward_to,attr_range"`
	Routes              []routeBlock     `hcl:"route,block"`
	ResponseBody        *string          `hcl:"response_body,optional"`
	ResponseContentType *string          `hcl:"response_content_type,optional"`
	Quarantine          *quarantineBlock `hcl:"quarantine,block"`
}

type quarantineBlock struct {
	DefRange     hcl.Range `hcl:",def_range"`
	MaxSize      *string   `hcl:"max_size,optional"`
	MaxSizeRange hcl.Range `hcl:"max_size,attr_range"`
	Keep         *string   `hcl:"keep,optional"`
	KeepRange    hcl.Range `hcl:"keep,attr_range"`
}

type routeBlock struct {
	DefRange       hcl.Range         `hcl:",def_range"`
	When           map[string]string `hcl:"when,optional"`
	WhenRange      hcl.Range         `hcl:"when,attr_range"`
	ForwardTo      []string          `hcl:"forward_to"`
	ForwardToRange hcl.Range         `hcl:"forward_to,attr_range"`
}

// authBlock keeps its body: its schema depends on its type label.
type authBlock struct {
	Type      string    `hcl:"type,label"`
	TypeRange hcl.Range `hcl:"type,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`
	Body      hcl.Body  `hcl:",remain"`
}

type noneAuthBody struct{}

type hmacAuthBody struct {
	Secrets        []string  `hcl:"secrets"`
	SecretsRange   hcl.Range `hcl:"secrets,attr_range"`
	Header         *string   `hcl:"header,optional"`
	Algorithm      *string   `hcl:"algorithm,optional"`
	AlgorithmRange hcl.Range `hcl:"algorithm,attr_range"`
	Encoding       *string   `hcl:"encoding,optional"`
	EncodingRange  hcl.Range `hcl:"encoding,attr_range"`
	Prefix         *string   `hcl:"prefix,optional"`
	PrefixOptional *bool     `hcl:"prefix_optional,optional"`
}

type basicAuthBody struct {
	Users []basicUserBlock `hcl:"user,block"`
}

type basicUserBlock struct {
	Name         string    `hcl:"name,label"`
	DefRange     hcl.Range `hcl:",def_range"`
	Password     string    `hcl:"password"`
	PassRange    hcl.Range `hcl:"password,attr_range"`
	Expires      *string   `hcl:"expires,optional"`
	ExpiresRange hcl.Range `hcl:"expires,attr_range"`
}

type headerAuthBody struct {
	Name         *string   `hcl:"name,optional"`
	NameRange    hcl.Range `hcl:"name,attr_range"`
	Values       []string  `hcl:"values"`
	ValuesRange  hcl.Range `hcl:"values,attr_range"`
	Expires      *string   `hcl:"expires,optional"`
	ExpiresRange hcl.Range `hcl:"expires,attr_range"`
}

type jwtAuthBody struct {
	Header           *string   `hcl:"header,optional"`
	Scheme           *string   `hcl:"scheme,optional"`
	Algorithms       []string  `hcl:"algorithms,optional"`
	AlgorithmsRange  hcl.Range `hcl:"algorithms,attr_range"`
	Secrets          []string  `hcl:"secrets,optional"`
	SecretsRange     hcl.Range `hcl:"secrets,attr_range"`
	PublicKeys       []string  `hcl:"public_keys,optional"`
	PublicKeysRange  hcl.Range `hcl:"public_keys,attr_range"`
	JWKSFile         *string   `hcl:"jwks_file,optional"`
	JWKSFileRange    hcl.Range `hcl:"jwks_file,attr_range"`
	Issuer           *string   `hcl:"issuer,optional"`
	Audience         *string   `hcl:"audience,optional"`
	Leeway           *string   `hcl:"leeway,optional"`
	LeewayRange      hcl.Range `hcl:"leeway,attr_range"`
	RequireExp       *bool     `hcl:"require_exp,optional"`
	MaxAge           *string   `hcl:"max_age,optional"`
	MaxAgeRange      hcl.Range `hcl:"max_age,attr_range"`
	PayloadHash      *bool     `hcl:"payload_hash,optional"`
	URLHash          *bool     `hcl:"url_hash,optional"`
	URLHashAttrRange hcl.Range `hcl:"url_hash,attr_range"`
}

type twilioAuthBody struct {
	AuthTokens      []string  `hcl:"auth_tokens"`
	AuthTokensRange hcl.Range `hcl:"auth_tokens,attr_range"`
}

type standardWebhooksAuthBody struct {
	Secrets        []string  `hcl:"secrets"`
	SecretsRange   hcl.Range `hcl:"secrets,attr_range"`
	Tolerance      *string   `hcl:"tolerance,optional"`
	ToleranceRange hcl.Range `hcl:"tolerance,attr_range"`
}

type ipAllowAuthBody struct {
	CIDRs      []string  `hcl:"cidrs"`
	CIDRsRange hcl.Range `hcl:"cidrs,attr_range"`
}

type backendBlock struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	URL                *string           `hcl:"url,optional"`
	URLRange           hcl.Range         `hcl:"url,attr_range"`
	Kafka              *kafkaBlock       `hcl:"kafka,block"`
	NATS               *natsBlock        `hcl:"nats,block"`
	Timeout            *string           `hcl:"timeout,optional"`
	TimeoutRange       hcl.Range         `hcl:"timeout,attr_range"`
	Concurrency        *int              `hcl:"concurrency,optional"`
	ConcurrencyRange   hcl.Range         `hcl:"concurrency,attr_range"`
	Retry              *retryBlock       `hcl:"retry,block"`
	Breaker            *breakerBlock     `hcl:"breaker,block"`
	Sign               *signBlock        `hcl:"sign,block"`
	TrustStore         []string          `hcl:"trust_store,optional"`
	TrustStoreRange    hcl.Range         `hcl:"trust_store,attr_range"`
	TrustStorePassword *string           `hcl:"trust_store_password,optional"`
	TrustSystemRoots   *bool             `hcl:"trust_system_roots,optional"`
	ClientCert         *clientCertBlock  `hcl:"client_cert,block"`
	Inject             []injectBlock     `hcl:"inject,block"`
	Headers            map[string]string `hcl:"headers,optional"`
	HeadersRange       hcl.Range         `hcl:"headers,attr_range"`
	PassAuthorization  *bool             `hcl:"pass_authorization,optional"`
	Proxy              *string           `hcl:"proxy,optional"`
	ProxyRange         hcl.Range         `hcl:"proxy,attr_range"`
	Rate               *string           `hcl:"rate,optional"`
	RateRange          hcl.Range         `hcl:"rate,attr_range"`
}

type retryBlock struct {
	Initial          *string   `hcl:"initial,optional"`
	InitialRange     hcl.Range `hcl:"initial,attr_range"`
	Max              *string   `hcl:"max,optional"`
	MaxRange         hcl.Range `hcl:"max,attr_range"`
	MaxAttempts      *int      `hcl:"max_attempts,optional"`
	MaxAttemptsRange hcl.Range `hcl:"max_attempts,attr_range"`
	MaxAge           *string   `hcl:"max_age,optional"`
	MaxAgeRange      hcl.Range `hcl:"max_age,attr_range"`
}

type breakerBlock struct {
	Failures         *int      `hcl:"failures,optional"`
	FailuresRange    hcl.Range `hcl:"failures,attr_range"`
	OpenFor          *string   `hcl:"open_for,optional"`
	OpenForRange     hcl.Range `hcl:"open_for,attr_range"`
	HalfOpenRequests *int      `hcl:"half_open_requests,optional"`
	HalfOpenRange    hcl.Range `hcl:"half_open_requests,attr_range"`
}

type signBlock struct {
	Secret      string    `hcl:"secret"`
	SecretRange hcl.Range `hcl:"secret,attr_range"`
}

type clientCertBlock struct {
	DefRange hcl.Range `hcl:",def_range"`
	CertFile *string   `hcl:"cert_file,optional"`
	KeyFile  *string   `hcl:"key_file,optional"`
	P12File  *string   `hcl:"p12_file,optional"`
	Password *string   `hcl:"password,optional"`
}

type upstreamBlock struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Listener            string           `hcl:"listener"`
	ListenerRange       hcl.Range        `hcl:"listener,attr_range"`
	Path                string           `hcl:"path"`
	PathRange           hcl.Range        `hcl:"path,attr_range"`
	BaseURL             string           `hcl:"base_url"`
	BaseURLRange        hcl.Range        `hcl:"base_url,attr_range"`
	AllowPaths          []string         `hcl:"allow_paths"`
	AllowPathsRange     hcl.Range        `hcl:"allow_paths,attr_range"`
	AllowMethods        []string         `hcl:"allow_methods,optional"`
	AllowMethodsRange   hcl.Range        `hcl:"allow_methods,attr_range"`
	Timeout             *string          `hcl:"timeout,optional"`
	TimeoutRange        hcl.Range        `hcl:"timeout,attr_range"`
	ConnectTimeout      *string          `hcl:"connect_timeout,optional"`
	ConnectTimeoutRange hcl.Range        `hcl:"connect_timeout,attr_range"`
	MaxBody             *string          `hcl:"max_body,optional"`
	MaxBodyRange        hcl.Range        `hcl:"max_body,attr_range"`
	Concurrency         *int             `hcl:"concurrency,optional"`
	ConcurrencyRange    hcl.Range        `hcl:"concurrency,attr_range"`
	Inject              []injectBlock    `hcl:"inject,block"`
	CallerAuth          []authBlock      `hcl:"caller_auth,block"`
	TrustStore          []string         `hcl:"trust_store,optional"`
	TrustStoreRange     hcl.Range        `hcl:"trust_store,attr_range"`
	TrustStorePassword  *string          `hcl:"trust_store_password,optional"`
	TrustSystemRoots    *bool            `hcl:"trust_system_roots,optional"`
	ClientCert          *clientCertBlock `hcl:"client_cert,block"`
	Breaker             *breakerBlock    `hcl:"breaker,block"`
	Proxy               *string          `hcl:"proxy,optional"`
	ProxyRange          hcl.Range        `hcl:"proxy,attr_range"`
	Rate                *string          `hcl:"rate,optional"`
	RateRange           hcl.Range        `hcl:"rate,attr_range"`
}

type injectBlock struct {
	Type      string    `hcl:"type,label"`
	TypeRange hcl.Range `hcl:"type,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`
	Body      hcl.Body  `hcl:",remain"`
}

type injectHeaderBody struct {
	Name         string    `hcl:"name"`
	NameRange    hcl.Range `hcl:"name,attr_range"`
	Value        string    `hcl:"value"`
	Expires      *string   `hcl:"expires,optional"`
	ExpiresRange hcl.Range `hcl:"expires,attr_range"`
}

type injectBasicBody struct {
	Username string `hcl:"username"`
	Password string `hcl:"password"`
}

type injectBearerBody struct {
	Token        string    `hcl:"token"`
	Expires      *string   `hcl:"expires,optional"`
	ExpiresRange hcl.Range `hcl:"expires,attr_range"`
}

type injectOAuth2Body struct {
	TokenURL        string    `hcl:"token_url"`
	TokenURLRange   hcl.Range `hcl:"token_url,attr_range"`
	ClientID        string    `hcl:"client_id"`
	ClientSecret    string    `hcl:"client_secret"`
	Scopes          []string  `hcl:"scopes,optional"`
	TrustStore      []string  `hcl:"trust_store,optional"`
	TrustStoreRange hcl.Range `hcl:"trust_store,attr_range"`
}

type injectJWTBody struct {
	Algorithm       string            `hcl:"algorithm"`
	AlgorithmRange  hcl.Range         `hcl:"algorithm,attr_range"`
	Secret          *string           `hcl:"secret,optional"`
	SecretRange     hcl.Range         `hcl:"secret,attr_range"`
	PrivateKeyFile  *string           `hcl:"private_key_file,optional"`
	PrivateKeyRange hcl.Range         `hcl:"private_key_file,attr_range"`
	Claims          map[string]string `hcl:"claims,optional"`
	ClaimsRange     hcl.Range         `hcl:"claims,attr_range"`
	TTL             *string           `hcl:"ttl,optional"`
	TTLRange        hcl.Range         `hcl:"ttl,attr_range"`
	Header          *string           `hcl:"header,optional"`
	HeaderRange     hcl.Range         `hcl:"header,attr_range"`
	Scheme          *string           `hcl:"scheme,optional"`
}

type injectHMACBody struct {
	Secret         string    `hcl:"secret"`
	SecretRange    hcl.Range `hcl:"secret,attr_range"`
	Header         *string   `hcl:"header,optional"`
	HeaderRange    hcl.Range `hcl:"header,attr_range"`
	Algorithm      *string   `hcl:"algorithm,optional"`
	AlgorithmRange hcl.Range `hcl:"algorithm,attr_range"`
	Encoding       *string   `hcl:"encoding,optional"`
	EncodingRange  hcl.Range `hcl:"encoding,attr_range"`
	Prefix         *string   `hcl:"prefix,optional"`
}

type injectIAMBody struct {
	IAMURL      string    `hcl:"iam_url"`
	IAMURLRange hcl.Range `hcl:"iam_url,attr_range"`
	Domain      string    `hcl:"domain"`
	Username    string    `hcl:"username"`
	Password    string    `hcl:"password"`
	PassRange   hcl.Range `hcl:"password,attr_range"`
	Project     *string   `hcl:"project,optional"`
}

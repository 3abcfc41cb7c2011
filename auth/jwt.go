package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures a JWT verifier (Vonage signed webhooks, MessageBird,
// generic bearer tokens).
type JWTConfig struct {
	// Header carries the token; "" means "Authorization".
	Header string
	// Scheme is taken literally: "Bearer" expects "Bearer <token>" (the
	// scheme compared case-insensitively); "" means the raw token.
	Scheme string
	// Algorithms are the accepted "alg" values (required), e.g. ["HS256"].
	// "none" is never accepted. HS* verify only with Secrets; RS*, PS*, ES*
	// and EdDSA only with PublicKeys or JWKS.
	Algorithms []string
	// Secrets are the HS* keys; any one may match. Empty strings are ignored.
	Secrets []string
	// PublicKeys are PEM contents: RSA, ECDSA or Ed25519 public keys
	// ("PUBLIC KEY", "RSA PUBLIC KEY") or certificates.
	PublicKeys [][]byte
	// JWKS is the contents of a JWKS document; keys are selected by kid.
	JWKS []byte
	// Issuer and Audience, when not empty, must match iss and aud.
	Issuer, Audience string
	// Leeway is the clock tolerance applied to exp, nbf and iat.
	Leeway time.Duration
	// RequireExp rejects tokens without exp.
	RequireExp bool
	// MaxAge, when more than 0, requires the iat claim and rejects a token
	// issued more than MaxAge (plus Leeway) ago, with ReasonClockSkew, and
	// one without iat, with ReasonBadClaims. It bounds the replay of a
	// captured token that has no exp (Vonage sends none). 0 turns it off.
	MaxAge time.Duration
	// PayloadHash requires the claim payload_hash to equal the hex SHA-256
	// of the raw body (Vonage, MessageBird). A token without the claim is
	// accepted only for an empty body.
	PayloadHash bool
	// URLHash requires the claim url_hash to equal the hex SHA-256 of the
	// public URL plus "?" and the raw query when there is one (MessageBird).
	URLHash bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// JWT verifies a signed JSON Web Token carried in a header.
type JWT struct {
	header      string
	scheme      string
	algs        map[string]bool
	secrets     [][]byte
	keys        []jwtKey
	parser      *jwt.Parser
	opts        []jwt.ParserOption // parser's options, for a parser at a request's own time
	payloadHash bool
	urlHash     bool
	maxAge      time.Duration
	leeway      time.Duration
	now         func() time.Time
}

var _ Verifier = (*JWT)(nil)

// jwtKey is a public key, with its JWKS kid and alg when it came from one.
type jwtKey struct {
	kid, alg string
	key      any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// jwtAlgorithmNames lists the supported algorithms, for error messages.
const jwtAlgorithmNames = "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"

// jwtFamily returns "hmac", "rsa", "ecdsa" or "ed25519" for a supported
// algorithm, "" otherwise.
func jwtFamily(alg string) string {
	switch alg {
	case "HS256", "HS384", "HS512":
		return "hmac"
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "rsa"
	case "ES256", "ES384", "ES512":
		return "ecdsa"
	case "EdDSA":
		return "ed25519"
	}
	return ""
}

// ecdsaCurveBits is the curve size each ES algorithm requires.
func ecdsaCurveBits(alg string) int {
	switch alg {
	case "ES256":
		return 256
	case "ES384":
		return 384
	case "ES512":
		return 521
	}
	return 0
}

func keyFamily(k any) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "rsa"
	case *ecdsa.PublicKey:
		return "ecdsa"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return ""
}

// keyFits reports whether key k can verify alg.
func keyFits(k any, alg string) bool {
	if keyFamily(k) != jwtFamily(alg) {
		return false
	}
	if ec, ok := k.(*ecdsa.PublicKey); ok {
		return ec.Curve.Params().BitSize == ecdsaCurveBits(alg)
	}
	return true
}

// NewJWT checks c and returns the verifier.
func NewJWT(c JWTConfig) (*JWT, error) {
	v := &JWT{
		header:      strings.TrimSpace(c.Header),
		scheme:      strings.TrimSpace(c.Scheme),
		algs:        map[string]bool{},
		payloadHash: c.PayloadHash,
		urlHash:     c.URLHash,
		maxAge:      c.MaxAge,
		leeway:      c.Leeway,
	}
	if v.header == "" {
		v.header = "Authorization"
	}
	if len(c.Algorithms) == 0 {
		return nil, fmt.Errorf("jwt: algorithms are required (%s)", jwtAlgorithmNames)
	}
	families := map[string]bool{}
	var algs []string
	for _, alg := range c.Algorithms {
		if strings.EqualFold(alg, "none") {
			return nil, errors.New(`jwt: algorithm "none" is never accepted`)
		}
		f := jwtFamily(alg)
		if f == "" {
			return nil, fmt.Errorf("jwt: algorithm %q not supported (%s)", alg, jwtAlgorithmNames)
		}
		if !v.algs[alg] {
			v.algs[alg] = true
			algs = append(algs, alg)
		}
		families[f] = true
	}
	for _, s := range nonEmpty(c.Secrets) {
		v.secrets = append(v.secrets, []byte(s))
	}
	for i, p := range c.PublicKeys {
		keys, err := parsePublicKeys(p)
		if err != nil {
			return nil, fmt.Errorf("jwt: public key %d: %w", i+1, err)
		}
		v.keys = append(v.keys, keys...)
	}
	if len(c.JWKS) > 0 {
		keys, err := parseJWKS(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwt: jwks: %w", err)
		}
		v.keys = append(v.keys, keys...)
	}
	switch {
	case families["hmac"] && len(v.secrets) == 0:
		return nil, errors.New("jwt: HS algorithms need at least one non-empty secret")
	case !families["hmac"] && len(v.secrets) > 0:
		return nil, errors.New("jwt: secrets are given but no HS algorithm is accepted")
	case len(v.keys) > 0 && !families["rsa"] && !families["ecdsa"] && !families["ed25519"]:
		return nil, errors.New("jwt: public keys are given but no RS, PS, ES or EdDSA algorithm is accepted")
	}
	for _, alg := range algs {
		if jwtFamily(alg) == "hmac" {
			continue
		}
		fits := false
		for _, k := range v.keys {
			if keyFits(k.key, alg) && (k.alg == "" || k.alg == alg) {
				fits = true
			}
		}
		if !fits {
			return nil, fmt.Errorf("jwt: algorithm %s has no matching public key", alg)
		}
	}
	if c.Leeway < 0 {
		return nil, fmt.Errorf("jwt: leeway %s is negative", c.Leeway)
	}
	if c.MaxAge < 0 {
		return nil, fmt.Errorf("jwt: max_age %s is negative", c.MaxAge)
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	v.now = now
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(c.Leeway),
		jwt.WithTimeFunc(now),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	v.opts = opts
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify extracts the token, checks its signature and claims, and the
// payload and URL hashes when configured.
func (v *JWT) Verify(r *Request) error {
	value := strings.TrimSpace(r.Header.Get(v.header))
	if value == "" {
		return fail(ReasonMissing, "jwt: header %s is absent", v.header)
	}
	token := value
	if v.scheme != "" {
		scheme, rest, ok := strings.Cut(value, " ")
		if !ok || !strings.EqualFold(scheme, v.scheme) {
			return fail(ReasonMalformed, "jwt: header %s does not use the %s scheme", v.header, v.scheme)
		}
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		return fail(ReasonMalformed, "jwt: header %s holds no token", v.header)
	}
	if !printable(token) {
		return fail(ReasonMalformed, "jwt: token in %s is malformed", v.header)
	}
	claims := jwt.MapClaims{}
	parser := v.parser
	if !r.At.IsZero() {
		at := r.At
		parser = jwt.NewParser(append(slices.Clip(v.opts), jwt.WithTimeFunc(func() time.Time { return at }))...)
	}
	parsed, err := parser.ParseWithClaims(token, claims, v.keyFunc)
	if err != nil {
		return v.failure(parsed, err)
	}
	if v.maxAge > 0 {
		iat, err := claims.GetIssuedAt()
		if err != nil || iat == nil {
			return fail(ReasonBadClaims, "jwt: claim iat is missing or not a number, and max_age needs it")
		}
		if age := v.now().Sub(iat.Time); age > v.maxAge+v.leeway {
			return fail(ReasonClockSkew, "jwt: issued %s ago, more than max_age %s", age.Round(time.Second), v.maxAge)
		}
	}
	if v.payloadHash {
		got, present := claims["payload_hash"]
		s, isString := got.(string)
		switch {
		case present && !isString:
			return fail(ReasonBadClaims, "jwt: claim payload_hash is not a string")
		case !present && len(r.Body) > 0:
			return fail(ReasonBadClaims, "jwt: claim payload_hash is missing but the body is not empty")
		case present && !equalHex(s, PayloadHash(r.Body)):
			return fail(ReasonBadClaims, "jwt: claim payload_hash does not match the body")
		}
	}
	if v.urlHash {
		s, ok := claims["url_hash"].(string)
		if !ok {
			return fail(ReasonBadClaims, "jwt: claim url_hash is missing")
		}
		if !equalHex(s, URLHash(fullURL(r))) {
			return fail(ReasonBadClaims, "jwt: claim url_hash does not match the URL")
		}
	}
	return nil
}

// keyFunc returns the keys that may verify t: the secrets for HS*, the
// public keys of the matching type (and kid, when both sides name one)
// otherwise. It never hands a public key's bytes to an HMAC method.
func (v *JWT) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !v.algs[alg] {
		return nil, errors.New("algorithm not accepted")
	}
	set := jwt.VerificationKeySet{}
	if jwtFamily(alg) == "hmac" {
		for _, s := range v.secrets {
			set.Keys = append(set.Keys, s)
		}
		return set, nil
	}
	kid, _ := t.Header["kid"].(string)
	for _, k := range v.keys {
		if !keyFits(k.key, alg) || (k.alg != "" && k.alg != alg) {
			continue
		}
		if kid != "" && k.kid != "" && k.kid != kid {
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no key for the token's kid and algorithm")
	}
	return set, nil
}

// shortAlg quotes a token's alg for a log line, bounded in length.
func shortAlg(t *jwt.Token) string {
	if t == nil || t.Method == nil {
		return `""`
	}
	alg := t.Method.Alg()
	if len(alg) > 16 {
		alg = alg[:16] + "…"
	}
	return fmt.Sprintf("%q", alg)
}

// failure maps a golang-jwt error to a Failure. The library's own error
// text is not used, so that no part of the token reaches the log.
func (v *JWT) failure(t *jwt.Token, err error) *Failure {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(ReasonMalformed, "jwt: token in %s is malformed", v.header)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		if t != nil && t.Method != nil && !v.algs[t.Method.Alg()] {
			return fail(ReasonBadSignature, "jwt: algorithm %s is not accepted", shortAlg(t))
		}
		return fail(ReasonBadSignature, "jwt: %s signature does not verify", shortAlg(t))
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ReasonExpired, "jwt: token is expired")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ReasonClockSkew, "jwt: token is issued in the future")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail(ReasonBadClaims, "jwt: token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(ReasonBadClaims, "jwt: claim iss does not match")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(ReasonBadClaims, "jwt: claim aud does not match")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(ReasonBadClaims, "jwt: a required claim is missing")
	}
	return fail(ReasonBadClaims, "jwt: claims are invalid")
}

// parsePublicKeys reads every PEM block of data.
func parsePublicKeys(data []byte) ([]jwtKey, error) {
	var out []jwtKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				key = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("pem block %q is not a public key or certificate", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("pem block %q: %w", block.Type, err)
		}
		if keyFamily(key) == "" {
			return nil, fmt.Errorf("pem block %q: key type %T not supported (RSA, ECDSA, Ed25519)", block.Type, key)
		}
		out = append(out, jwtKey{key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key or certificate found")
	}
	return out, nil
}

// jwk is one key of a JWKS document (RFC 7517, 7518, 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// parseJWKS reads the RSA, EC and OKP (Ed25519) signing keys of a JWKS
// document. Symmetric ("oct") keys and encryption keys are skipped: a JWKS
// never supplies an HMAC secret.
func parseJWKS(data []byte) ([]jwtKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	var out []jwtKey
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Alg != "" && (jwtFamily(k.Alg) == "" || jwtFamily(k.Alg) == "hmac") {
			continue
		}
		key, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i+1, k.Kid, err)
		}
		if key != nil {
			out = append(out, jwtKey{kid: k.Kid, alg: k.Alg, key: key})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no usable signing key (RSA, EC or Ed25519)")
	}
	return out, nil
}

// publicKey returns the key, or nil for a key type that is skipped.
func (k jwk) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64url(k.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("bad RSA modulus")
		}
		e, err := b64url(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA exponent")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q not supported (P-256, P-384, P-521)", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64url(k.X)
		y, errY := b64url(k.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		point := append([]byte{4}, x...)
		point = append(point, y...)
		key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("bad EC point: %w", err)
		}
		return key, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64url(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}

// SignJWT signs claims with alg and key, for `edgerelay simulate` and
// tests. For HS* the key is a []byte or a string; otherwise a private key
// of the algorithm's type. "none" is refused.
func SignJWT(alg string, key any, claims map[string]any) (string, error) {
	if strings.EqualFold(alg, "none") || jwtFamily(alg) == "" {
		return "", fmt.Errorf("jwt: algorithm %q not supported for signing (%s)", alg, jwtAlgorithmNames)
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return "", fmt.Errorf("jwt: algorithm %q not supported for signing", alg)
	}
	if s, ok := key.(string); ok {
		key = []byte(s)
	}
	if jwtFamily(alg) == "hmac" {
		if _, ok := key.([]byte); !ok {
			return "", fmt.Errorf("jwt: %s needs a []byte or string key, not %T", alg, key)
		}
	}
	signed, err := jwt.NewWithClaims(method, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("jwt: signing with %s: %w", alg, err)
	}
	return signed, nil
}

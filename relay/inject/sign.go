package inject

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"

	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWT signs a fresh token for every attempt: `inject "jwt" { algorithm,
// secret | private_key_file, claims, ttl, header, scheme }`. The token
// carries Claims plus iat (now), exp (iat + TTL) and a random jti, so
// receivers verify it with any JWT library (Kore.ai's "Associate an App").
type JWT struct {
	// Algorithm is HS256, HS384, HS512 (with Secret), RS256 or ES256 (with
	// PrivateKey, a PEM private key: RSA, or ECDSA P-256). Required.
	Algorithm string
	Secret    string
	// PrivateKey is the PEM text of the key (the relay reads private_key_file).
	PrivateKey []byte
	// Claims are added as string claims; iat, exp and jti are always set
	// by the signer and cannot be given here.
	Claims map[string]string
	// TTL is exp - iat (default 5m).
	TTL time.Duration
	// Header carries the token (default Authorization) after Scheme and a
	// space (default "Bearer"; "" sends the bare token).
	Header string
	Scheme string
}

// JWTAlgorithms are the algorithms inject "jwt" signs with.
var JWTAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "ES256"}

type jwtSigner struct {
	method jwt.SigningMethod
	key    any
	claims map[string]string
	ttl    time.Duration
	header string
	prefix string
}

func newJWTSigner(v JWT) (*jwtSigner, error) {
	s := &jwtSigner{claims: v.Claims, ttl: v.TTL, header: "Authorization", prefix: v.Scheme}
	if s.ttl == 0 {
		s.ttl = 5 * time.Minute
	}
	if s.ttl < 0 {
		return nil, errors.New("ttl is negative")
	}
	if v.Header != "" {
		if !validHeaderName(v.Header) {
			return nil, fmt.Errorf("invalid header name %q", v.Header)
		}
		s.header = http.CanonicalHeaderKey(v.Header)
	}
	if s.prefix != "" {
		if !validHeaderValue(s.prefix) {
			return nil, errors.New("scheme has control characters")
		}
		s.prefix += " "
	}
	for k := range v.Claims {
		if k == "iat" || k == "exp" || k == "jti" {
			return nil, fmt.Errorf("claim %q is set by the signer", k)
		}
	}
	switch v.Algorithm {
	case "HS256", "HS384", "HS512":
		if v.Secret == "" {
			return nil, fmt.Errorf("%s needs a secret", v.Algorithm)
		}
		s.method, s.key = jwt.GetSigningMethod(v.Algorithm), []byte(v.Secret)
	case "RS256":
		if len(v.PrivateKey) == 0 {
			return nil, errors.New("RS256 needs a private key file")
		}
		k, err := jwt.ParseRSAPrivateKeyFromPEM(v.PrivateKey)
		if err != nil {
			return nil, errors.New("private key: not a PEM RSA private key")
		}
		s.method, s.key = jwt.SigningMethodRS256, k
	case "ES256":
		if len(v.PrivateKey) == 0 {
			return nil, errors.New("ES256 needs a private key file")
		}
		k, err := jwt.ParseECPrivateKeyFromPEM(v.PrivateKey)
		if err != nil {
			return nil, errors.New("private key: not a PEM EC private key")
		}
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ES256 needs a P-256 key")
		}
		s.method, s.key = jwt.SigningMethodES256, k
	default:
		return nil, fmt.Errorf("algorithm %q: use HS256, HS384, HS512, RS256 or ES256", v.Algorithm)
	}
	return s, nil
}

// ParsePrivateKey checks that pem is a key the algorithm can sign with
// (for validate); the error never quotes the key.
func ParsePrivateKey(algorithm string, pem []byte) error {
	_, err := newJWTSigner(JWT{Algorithm: algorithm, PrivateKey: pem})
	return err
}

var (
	_ crypto.Signer = (*rsa.PrivateKey)(nil)
	_ crypto.Signer = (*ecdsa.PrivateKey)(nil)
)

func (s *jwtSigner) sign(now time.Time) (string, error) {
	c := jwt.MapClaims{}
	for k, v := range s.claims {
		c[k] = v
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	c["iat"] = now.Unix()
	c["exp"] = now.Add(s.ttl).Unix()
	c["jti"] = hex.EncodeToString(jti[:])
	t, err := jwt.NewWithClaims(s.method, c).SignedString(s.key)
	if err != nil {
		return "", errors.New("signing failed")
	}
	return s.prefix + t, nil
}

// HMAC signs the exact delivered body: `inject "hmac" { secret, header,
// algorithm, encoding, prefix }` (a platform that checks Meta's signature
// with its own app secret gets a valid one).
type HMAC struct {
	Secret string
	// Header defaults to X-Hub-Signature-256.
	Header string
	// Algorithm is sha1, sha256 (default) or sha512.
	Algorithm string
	// Encoding is hex (default) or base64.
	Encoding string
	// Prefix is written before the signature; nil defaults to
	// "<algorithm>=" (Meta's "sha256="), "" writes none.
	Prefix *string
}

type hmacSigner struct {
	secret []byte
	header string
	newH   func() hash.Hash
	b64    bool
	prefix string
}

func newHMACSigner(v HMAC) (*hmacSigner, error) {
	if v.Secret == "" {
		return nil, errors.New("secret is required")
	}
	s := &hmacSigner{secret: []byte(v.Secret), header: "X-Hub-Signature-256"}
	if v.Header != "" {
		if !validHeaderName(v.Header) {
			return nil, fmt.Errorf("invalid header name %q", v.Header)
		}
		s.header = http.CanonicalHeaderKey(v.Header)
	}
	alg := v.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	switch alg {
	case "sha1":
		s.newH = sha1.New
	case "sha256":
		s.newH = sha256.New
	case "sha512":
		s.newH = sha512.New
	default:
		return nil, fmt.Errorf("algorithm %q: use sha1, sha256 or sha512", v.Algorithm)
	}
	switch v.Encoding {
	case "", "hex":
	case "base64":
		s.b64 = true
	default:
		return nil, fmt.Errorf("encoding %q: use hex or base64", v.Encoding)
	}
	s.prefix = alg + "="
	if v.Prefix != nil {
		s.prefix = *v.Prefix
	}
	if !validHeaderValue(s.prefix) {
		return nil, errors.New("prefix has control characters")
	}
	return s, nil
}

func (s *hmacSigner) sign(body []byte) string {
	m := hmac.New(s.newH, s.secret)
	m.Write(body)
	sum := m.Sum(nil)
	if s.b64 {
		return s.prefix + base64.StdEncoding.EncodeToString(sum)
	}
	return s.prefix + hex.EncodeToString(sum)
}

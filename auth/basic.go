package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BasicUser is one user of a Basic verifier.
type BasicUser struct {
	Name     string
	Password string
	// Expires is the first instant at which the user is rejected; the zero
	// time means never.
	Expires time.Time
}

// BasicConfig configures a Basic verifier (HTTP Basic authentication).
type BasicConfig struct {
	Users []BasicUser
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Basic verifies HTTP Basic credentials against a list of users.
//
// A wrong user name costs the same time as a wrong password: an unknown
// user is compared against a dummy password.
type Basic struct {
	users map[string]basicUser
	names []string // configuration order, for Expiries
	now   func() time.Time
	dummy [sha256.Size]byte // stands in for the password of an unknown user
}

type basicUser struct {
	hash    [sha256.Size]byte
	expires time.Time
}

var (
	_ Verifier = (*Basic)(nil)
	_ Expiring = (*Basic)(nil)
)

// NewBasic checks c and returns the verifier.
func NewBasic(c BasicConfig) (*Basic, error) {
	if len(c.Users) == 0 {
		return nil, errors.New("basic: at least one user is required")
	}
	b := &Basic{
		users: make(map[string]basicUser, len(c.Users)),
		now:   c.Now,
		dummy: sha256.Sum256([]byte("edgerelay: no such user")),
	}
	if b.now == nil {
		b.now = time.Now
	}
	for i, u := range c.Users {
		switch {
		case u.Name == "":
			return nil, fmt.Errorf("basic: user %d has an empty name", i+1)
		case strings.Contains(u.Name, ":"):
			return nil, fmt.Errorf("basic: user name %q contains a colon", u.Name)
		case u.Password == "":
			return nil, fmt.Errorf("basic: user %q has an empty password", u.Name)
		}
		if _, dup := b.users[u.Name]; dup {
			return nil, fmt.Errorf("basic: user %q is defined twice", u.Name)
		}
		b.users[u.Name] = basicUser{hash: sha256.Sum256([]byte(u.Password)), expires: u.Expires}
		b.names = append(b.names, u.Name)
	}
	return b, nil
}

// Verify checks the Authorization header.
func (b *Basic) Verify(r *Request) error {
	value := r.Header.Get("Authorization")
	if strings.TrimSpace(value) == "" {
		return fail(ReasonMissing, "basic: Authorization header is absent")
	}
	name, password, ok := parseBasic(value)
	if !ok {
		return fail(ReasonMalformed, "basic: Authorization header is not valid Basic credentials")
	}
	u, known := b.users[name]
	want := b.dummy
	if known {
		want = u.hash
	}
	got := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	if !known || !match {
		return fail(ReasonBadCredentials, "basic: wrong user name or password")
	}
	if !u.expires.IsZero() && !r.at(b.now).Before(u.expires) {
		return fail(ReasonExpired, "basic: user %q expired at %s", name, u.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// parseBasic decodes "Basic base64(name:password)"; the scheme is
// case-insensitive.
func parseBasic(value string) (name, password string, ok bool) {
	value = strings.TrimSpace(value)
	scheme, encoded, found := strings.Cut(value, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	encoded = strings.TrimSpace(encoded)
	if !printable(encoded) {
		return "", "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", "", false
	}
	name, password, ok = strings.Cut(string(decoded), ":")
	if !ok || name == "" {
		return "", "", false
	}
	return name, password, true
}

// Expiries lists the users that have an expiry date.
func (b *Basic) Expiries() []Expiry {
	var out []Expiry
	for _, name := range b.names {
		if u := b.users[name]; !u.expires.IsZero() {
			out = append(out, Expiry{Name: "user " + name, At: u.expires})
		}
	}
	return out
}

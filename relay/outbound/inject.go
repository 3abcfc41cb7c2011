package outbound

import "github.com/edgerelay/edgerelay/relay/inject"

// The credentials an upstream injects are the ones backends use too: one
// implementation, in package inject. These names keep the upstream's API.
type (
	// Injector is one credential block; see inject.Spec.
	Injector = inject.Spec
	// HeaderInject is `inject "header" { name, value, expires }`.
	HeaderInject = inject.Header
	// BasicInject is `inject "basic" { username, password }`.
	BasicInject = inject.Basic
	// BearerInject is `inject "bearer" { token, expires }`.
	BearerInject = inject.Bearer
	// OAuth2Inject is `inject "oauth2" { token_url, client_id, client_secret, scopes }`.
	OAuth2Inject = inject.OAuth2
	// JWTInject is `inject "jwt" { ... }`: a fresh token per call.
	JWTInject = inject.JWT
	// HMACInject is `inject "hmac" { ... }`: a signature of the exact body.
	HMACInject = inject.HMAC
	// HuaweiIAMInject is `inject "huawei_iam" { iam_url, domain, username, password, project }`.
	HuaweiIAMInject = inject.HuaweiIAM
)

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == '<' || c == '>' || c == '@' ||
			c == ',' || c == ';' || c == '\\' || c == '"' || c == '/' || c == '[' || c == ']' || c == '?' ||
			c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

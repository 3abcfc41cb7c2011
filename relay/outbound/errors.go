package outbound

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Codes of the relay's own JSON errors (the "code" member of the body).
const (
	CodeMethodNotAllowed  = "method_not_allowed"   // 403: method outside allow_methods, CONNECT, TRACE
	CodeBadRequestTarget  = "bad_request_target"   // 403: absolute URL or authority in the request line
	CodeHostNotAllowed    = "host_not_allowed"     // 403: Host header outside Spec.Hosts
	CodePathRefused       = "path_refused"         // 403: path trick, or not under the mount point
	CodePathNotAllowed    = "path_not_allowed"     // 403: path outside allow_paths
	CodeNoUpstream        = "no_upstream"          // 403: Router found no upstream for the path
	CodeUnauthorized      = "unauthorized"         // 401: caller_auth failed
	CodeBodyTooLarge      = "body_too_large"       // 413: request body above MaxBody
	CodeBadRequestBody    = "bad_request_body"     // 400: the caller's body could not be read
	CodeConcurrency       = "concurrency_limit"    // 503: Concurrency requests already in flight
	CodeBreakerOpen       = "breaker_open"         // 503: circuit breaker open or half-open and busy
	CodeTimeout           = "upstream_timeout"     // 504: total timeout
	CodeUnreachable       = "upstream_unreachable" // 502: connection refused, DNS, TLS or connect timeout
	CodeUpstreamError     = "upstream_error"       // 502: the exchange with the BSP failed
	CodeTokenEndpoint     = "token_endpoint"       // 502: no OAuth2 token or IAM login could be obtained
	CodeCredentialExpired = "credential_expired"   // 502: an injected credential passed its expires date
	CodeRateLimited       = "rate_limited"         // 429: above the upstream's rate (with Retry-After)
	CodeCallerGone        = "caller_gone"          // 499: the caller went away first
)

// ErrorBody is the JSON body of every answer the relay makes itself (as
// opposed to the BSP's answers, which are passed through unchanged).
type ErrorBody struct {
	// Error is a human-readable message.
	Error string `json:"error"`
	// Code is one of the Code… constants.
	Code string `json:"code"`
	// Upstream names the upstream, when known.
	Upstream string `json:"upstream,omitempty"`
	// Breaker is the breaker state ("open", "half-open") on breaker refusals.
	Breaker string `json:"breaker,omitempty"`
	// RetryAfter repeats the Retry-After header, in seconds.
	RetryAfter int `json:"retry_after,omitempty"`
}

// writeError writes a relay-made JSON error. Never a redirect.
func writeError(w http.ResponseWriter, status int, b ErrorBody) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if b.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(b.RetryAfter))
	}
	body, _ := json.Marshal(b) // plain strings and ints: cannot fail
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Sentinels classifying failed exchanges; see classify.
var (
	// ErrTimeout is the cause of a request context whose total timeout
	// (Spec.Timeout) expired.
	ErrTimeout = errors.New("upstream total timeout")
	// errCaller marks a failure on the caller's side (went away, broken or
	// oversized body): excluded from the breaker's counts.
	errCaller = errors.New("caller failure")
)

// statusError reports a BSP answer with a 5xx status to the breaker.
type statusError struct{ code int }

func (e *statusError) Error() string { return "upstream answered " + strconv.Itoa(e.code) }

// breakerSuccessful is gobreaker's IsSuccessful: nil and non-5xx answers.
func breakerSuccessful(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code < 500
	}
	return err == nil
}

// breakerExcluded is gobreaker's IsExcluded: the caller's own failures.
func breakerExcluded(err error) bool {
	return errors.Is(err, errCaller)
}

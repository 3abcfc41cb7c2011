package inject

import (
	"bytes"
	"io"
	"net/http"
)

// Transport is an http.RoundTripper that applies Set to every request
// before Base sends it, the shape of golang.org/x/oauth2's Transport. When
// the answer is 401 and the attempt carried fetched tokens, they are
// dropped and the request is sent once more with fresh ones (which needs
// req.GetBody when there is a body; without it the 401 is returned).
type Transport struct {
	Base http.RoundTripper
	Set  *Set
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if t.Set.NeedsBody() && req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	send := func(replay bool) (*http.Response, *Attempt, error) {
		out := req.Clone(req.Context())
		out.Header = req.Header.Clone()
		if out.Header == nil {
			out.Header = http.Header{}
		}
		switch {
		case body != nil:
			out.Body = io.NopCloser(bytes.NewReader(body))
		case replay && req.GetBody != nil && req.Body != nil && req.Body != http.NoBody:
			b, err := req.GetBody()
			if err != nil {
				return nil, nil, err
			}
			out.Body = b
		}
		att, err := t.Set.Apply(req.Context(), out.Header, body)
		if err != nil {
			if out.Body != nil {
				out.Body.Close()
			}
			return nil, att, err
		}
		res, err := t.Base.RoundTrip(out)
		return res, att, err
	}
	res, att, err := send(false)
	if err != nil || res.StatusCode != http.StatusUnauthorized || !att.Unauthorized() {
		return res, err
	}
	if body == nil && req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return res, nil
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	res, _, err = send(true)
	return res, err
}

package relay

import "net/http"

// closeAfterChunked closes an HTTP/1 connection after answering any request
// framed with Transfer-Encoding.
//
// RFC 9112 §6.1: a server that receives both Content-Length and
// Transfer-Encoding MUST close the connection after responding, since the
// two framings disagree on where the next request starts (request
// smuggling). net/http frames such a request by Transfer-Encoding and drops
// the Content-Length header before any handler runs, so a handler cannot
// tell the two cases apart; closing after every chunked request covers
// them both, at the cost of one reconnect for senders that chunk their
// callbacks (BSPs send Content-Length in practice). Whatever follows the
// chunked body on the connection is never read, let alone answered.
func closeAfterChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

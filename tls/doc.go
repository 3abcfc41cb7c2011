// Package tls holds every certificate and trust decision of edgerelay: the
// trust stores that pin which servers the relay talks to, the client
// certificates it presents, the server certificates its listeners serve
// (static files, a persisted self-signed development certificate, or
// certificates managed over ACME by certmagic), the TLS policy of those
// listeners, and inbound mutual TLS.
//
// The package shadows crypto/tls; importers alias it as relaytls. It takes
// plain Go structs and knows nothing of the configuration language.
//
// Where to start:
//   - [LoadTrustStore] reads PEM, DER, PKCS#12 and JKS files, detecting the
//     format from the content, and [ClientTLS] turns a trust store and an
//     optional client certificate ([LoadClientCert]) into the *tls.Config of
//     an outbound connection.
//   - [NewServer] builds the certificate source of one listener from a
//     [ServerConfig]; [Server.TLSConfig] is what the listener's http.Server
//     uses, [Server.Start] begins ACME management, [Server.Ready] tells
//     whether every managed name has a certificate, and
//     [Server.Certificates] lists what is served (for expiry metrics).
//
// With ACME, bind the listener (serving TLSConfig, and HTTPChallengeHandler
// on port 80 for HTTP-01) before Start: certmagic answers TLS-ALPN-01
// through the listener's own handshakes and binds a challenge port itself
// only when nothing listens there. Several relays sharing one StorageDir
// (or one certmagic storage) place one order per name between them, and
// any of them answers the CA's challenge. certmagic's logs go to the
// slog.Logger in ServerConfig.
package tls

// Package console is the operator's web console, served under /ui/ on the
// admin listener: a login page (an admin token becomes an HttpOnly,
// SameSite=Strict session cookie), a self-refreshing overview (channels,
// backends, upstreams, certificates and credentials, with small rate
// charts), the dead letters with an event inspector, replay and purge.
//
// Start with New and Console.ServeHTTP (console.go): the routes, sessions
// and CSRF checks. pages.go renders each page from the Source the relay
// provides (relay/console_mount.go adapts the Server); sampler.go keeps the
// small in-memory ring of counter samples the charts are drawn from. The
// HTML is server-rendered with html/template from assets/ (embedded), with
// one small hand-written script for the refresh; the console loads nothing
// from anywhere but the admin listener, and its Content-Security-Policy
// says so to the browser.
//
// Every POST carries the session's CSRF token; the login form carries a
// token bound to a short-lived cookie. Viewer sessions are never shown a
// control they may not use, and the handlers refuse it anyway.
package console

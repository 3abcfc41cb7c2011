package relay

import "net/http"

// newConsole builds the console served under /ui/.
func (s *Server) newConsole() http.Handler { return nil }

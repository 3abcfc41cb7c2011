package tls

import (
	"fmt"
	"os"
)

// KeyFileExposure describes how a private key file (PEM key, PKCS#12
// bundle) is exposed to users other than its owner: "" when its mode
// grants nothing to group or others (or it cannot be examined, which
// loading it reports), else e.g. "mode 0644 lets group and others read
// it". The relay warns about such files at validate and at load; it does
// not refuse them, since a key shared with a group on purpose (a tls-keys
// group) is a legitimate setup.
func KeyFileExposure(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if !fi.Mode().IsRegular() {
		return ""
	}
	perm := fi.Mode().Perm()
	var who string
	switch {
	case perm&0o070 != 0 && perm&0o007 != 0:
		who = "group and others"
	case perm&0o070 != 0:
		who = "its group"
	case perm&0o007 != 0:
		who = "others"
	default:
		return ""
	}
	return fmt.Sprintf("mode %04o lets %s access it (chmod 600 it)", perm, who)
}

// warnKeyFile logs a WARN line when the static key file is exposed.
func (s *Server) warnKeyFile() {
	if msg := KeyFileExposure(s.cfg.KeyFile); msg != "" {
		s.log.Warn("private key file readable by other users", "file", s.cfg.KeyFile, "problem", msg)
	}
}

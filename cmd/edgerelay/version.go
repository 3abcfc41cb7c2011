package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/edgerelay/edgerelay/relay"
)

var versionCommand = &command{name: "version", run: cmdVersion, usage: `usage: edgerelay version   print the version and what it was built from
The version is the module version (or one set with -ldflags "-X
github.com/edgerelay/edgerelay/relay.Version=..."); the revision, its time and
whether the work tree had changes come from the VCS stamp "go build" records in
a git checkout (-buildvcs=true; absent when built with -buildvcs=false).
`}

// buildInfo is what the binary knows of its own build.
type buildInfo struct {
	Version   string // module version, "(devel)" for a build in the checkout
	Revision  string // VCS revision, "" when not stamped
	Time      string // commit time (RFC 3339), "" when not stamped
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

func buildVersion() buildInfo {
	bi := buildInfo{Version: "(devel)", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	if v := info.Main.Version; v != "" {
		bi.Version = v
	}
	bi.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.time":
			bi.Time = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

// short is one word for /healthz and logs: the module version, or for a
// build in a checkout "devel+REV" (with "-dirty" when modified).
func (b buildInfo) short() string {
	if b.Version != "(devel)" && b.Version != "" {
		return b.Version
	}
	if b.Revision == "" {
		return "devel"
	}
	rev := b.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Modified {
		rev += "-dirty"
	}
	return "devel+" + rev
}

func cmdVersion(cmd *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(cmd, stderr)
	if done, code := parseFlags(cmd, fs, args, stdout); done {
		return code
	}
	b := buildVersion()
	v := relay.Version
	if v == "dev" || v == "" {
		v = b.short()
	}
	fmt.Fprintf(stdout, "edgerelay %s\n", v)
	if b.Revision != "" {
		mod := ""
		if b.Modified {
			mod = " (with uncommitted changes)"
		}
		fmt.Fprintf(stdout, "  revision  %s%s\n", b.Revision, mod)
		fmt.Fprintf(stdout, "  committed %s\n", b.Time)
	} else {
		fmt.Fprintln(stdout, "  revision  unknown (built without VCS information: -buildvcs=false or outside a git checkout)")
	}
	fmt.Fprintf(stdout, "  module    %s\n", b.Version)
	fmt.Fprintf(stdout, "  go        %s %s/%s\n", b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return 0
}

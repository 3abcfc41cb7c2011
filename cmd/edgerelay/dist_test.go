package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile is a systemd unit: section -> key -> values (keys may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not KEY=VALUE in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	return strings.Join(u[section][key], " ")
}

// TestSystemdUnit checks dist/edgerelay.service: hardened as the README
// says, its commands are this binary's, its StateDirectory is the data_dir
// of the examples, and systemd-analyze verify (where installed) finds
// nothing to say.
func TestSystemdUnit(t *testing.T) {
	path := filepath.Join("..", "..", "dist", "edgerelay.service")
	u := parseUnit(t, path)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	want := map[string]string{
		"ProtectSystem":   "strict",
		"StateDirectory":  "edgerelay",
		"ReadWritePaths":  "/var/lib/edgerelay",
		"NoNewPrivileges": "yes",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
		"KillSignal":      "SIGTERM",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if u.get("Service", "DynamicUser") != "yes" && (u.get("Service", "User") == "" || u.get("Service", "User") == "root") {
		t.Error("the service must run as DynamicUser or a dedicated user, not root")
	}
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if u.get("Service", k) != "CAP_NET_BIND_SERVICE" {
			t.Errorf("[Service] %s = %q, want only CAP_NET_BIND_SERVICE", k, u.get("Service", k))
		}
	}
	// The commands are this binary's: run and validate with flags they know.
	for key, sub := range map[string]string{"ExecStart": "run", "ExecStartPre": "validate"} {
		f := strings.Fields(u.get("Service", key))
		if len(f) < 2 || filepath.Base(f[0]) != "edgerelay" || f[1] != sub {
			t.Fatalf("%s = %q", key, u.get("Service", key))
		}
		c := lookupCommand(sub)
		fs := newFlagSet(c, os.Stderr)
		fs.String("config", "", "")
		if sub == "run" {
			fs.Duration("shutdown-grace", 0, "")
		}
		if done, _ := parseFlags(c, fs, f[2:], os.Stdout); done || fs.NArg() > 0 {
			t.Errorf("%s: flags %q are not those of edgerelay %s", key, f[2:], sub)
		}
		if code, out, _ := cliRun(sub, "-h"); code != 0 || !strings.Contains(out, "-config") {
			t.Errorf("edgerelay %s has no -config", sub)
		}
	}
	// The examples write their queue where the unit lets them.
	examples, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.hcl"))
	for _, e := range examples {
		src, _ := os.ReadFile(e)
		if !strings.Contains(string(src), `data_dir = "/var/lib/`+u.get("Service", "StateDirectory")+`"`) {
			t.Errorf("%s: data_dir is not the unit's StateDirectory", e)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit was checked by the parser above only")
		return
	}
	// verify wants the commands to exist: point them at an executable.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(path)
	copyPath := filepath.Join(t.TempDir(), "edgerelay.service")
	writeFile(t, copyPath, strings.ReplaceAll(string(src), "/usr/local/bin/edgerelay", self))
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Unknown") || strings.Contains(string(out), "ignoring") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

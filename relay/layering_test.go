package relay

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering enforces the import direction cmd → relay → {auth, queue,
// tls}: the three leaves never import relay or each other.
func TestLayering(t *testing.T) {
	const mod = "github.com/edgerelay/edgerelay/"
	leaves := []string{"auth", "queue", "tls"}
	for _, leaf := range leaves {
		out, err := exec.Command("go", "list", "-deps", "../"+leaf).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", leaf, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !strings.HasPrefix(dep, mod) || dep == mod+leaf {
				continue
			}
			t.Errorf("%s imports %s: leaves import only the standard library and their own third-party library", leaf, dep)
		}
	}
}

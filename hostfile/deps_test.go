//go:build !windows

package hostfile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoProtocol keeps the engine free of the network: it must link
// neither protobuf, gRPC nor a transport, whose adapters call it.
func TestNoProtocol(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned only %d packages; the check would prove nothing", len(deps))
	}
	forbidden := []string{"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/felix-ops/felix/proto", "github.com/felix-ops/felix/transport"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("hostfile links %s", d)
			}
		}
	}
}

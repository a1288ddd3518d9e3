package ssh_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
)

// TestLocalAddr: the pool's end of the connection is the address and port
// the server sees the client at (sshd's SSH_CLIENT).
func TestLocalAddr(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.77")
	addr, err := p.LocalAddr(context.Background(), s.Target())
	if err != nil {
		t.Fatal(err)
	}
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		t.Fatalf("LocalAddr = %T %v; want a TCP address", addr, addr)
	}
	stdout, _, ex := mustRun(t, p, s.Target(), model.Command{Line: `echo "$SSH_CLIENT"`})
	f := strings.Fields(stdout)
	if ex.Code != 0 || len(f) != 3 || f[0] != ta.IP.String() || f[1] != strconv.Itoa(ta.Port) {
		t.Errorf("LocalAddr %v; the server sees the client at %q", ta, stdout)
	}
	bad := s.Target()
	bad.SSH.Port = 1
	if _, err := p.LocalAddr(context.Background(), bad); err == nil {
		t.Errorf("LocalAddr of a port nobody listens on: no error")
	}
}

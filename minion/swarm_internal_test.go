package minion

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
)

func TestSwarmAddrs(t *testing.T) {
	tests := []struct {
		first    string
		n        int
		want     []string // the first addresses, then the last
		wantLast string
		wantErr  string
	}{
		{first: "127.1.0.1", n: 3, want: []string{"127.1.0.1", "127.1.0.2", "127.1.0.3"}, wantLast: "127.1.0.3"},
		{first: "127.1.0.253", n: 4, want: []string{"127.1.0.253", "127.1.0.254", "127.1.1.1", "127.1.1.2"}, wantLast: "127.1.1.2"},
		{first: "127.1.0.0", n: 1, want: []string{"127.1.0.1"}, wantLast: "127.1.0.1"},
		{first: "127.1.0.1", n: 10000, want: []string{"127.1.0.1"}, wantLast: "127.1.39.94"},
		{first: "127.255.255.253", n: 3, wantErr: "past 127.255.255.254"},
		{first: "10.0.0.1", n: 1, wantErr: "loopback"},
		{first: "::1", n: 1, wantErr: "loopback"},
	}
	for _, tt := range tests {
		got, err := swarmAddrs(netip.MustParseAddr(tt.first), tt.n)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("swarmAddrs(%s, %d) error = %v; want one containing %q", tt.first, tt.n, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tt.n {
			t.Errorf("swarmAddrs(%s, %d) = %d addresses, %v; want %d", tt.first, tt.n, len(got), err, tt.n)
			continue
		}
		for i, w := range tt.want {
			if got[i].String() != w {
				t.Errorf("swarmAddrs(%s, %d)[%d] = %s; want %s", tt.first, tt.n, i, got[i], w)
			}
		}
		if last := got[len(got)-1].String(); last != tt.wantLast {
			t.Errorf("swarmAddrs(%s, %d) last = %s; want %s", tt.first, tt.n, last, tt.wantLast)
		}
		for _, a := range got {
			if b := a.As4()[3]; b == 0 || b == 255 {
				t.Errorf("swarmAddrs(%s, %d) holds %s", tt.first, tt.n, a)
			}
		}
	}
}

func TestParseSwarm(t *testing.T) {
	cfg, level, err := parseSwarm([]string{"--master", "https://127.0.0.1:8443"}, io.Discard)
	if err != nil {
		t.Fatalf("parseSwarm: %v", err)
	}
	// A swarm forks /bin/sh unless told otherwise, like the real minion.
	if cfg.exec != "fork" || cfg.count != 100 || cfg.port != 4510 || cfg.firstIP.String() != "127.1.0.1" ||
		cfg.idPrefix != "swarm-" || cfg.registerParallel != 16 || level != "warn" {
		t.Errorf("parseSwarm defaults = %+v, log level %s", cfg, level)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--exec", "fake"}, "want fork or noop"},
		{[]string{"--count", "0"}, "--count"},
		{[]string{"--offset", "-1"}, "--offset"},
		{[]string{"--port", "70000"}, "--port"},
		{[]string{"--first-ip", "nope"}, "--first-ip"},
		{[]string{"--register-parallel", "0"}, "--register-parallel"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, _, err := parseSwarm(append([]string{"--master", "https://127.0.0.1:8443"}, tt.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseSwarm(%q) error = %v; want one containing %q", tt.args, err, tt.want)
		}
	}
	if _, _, err := parseSwarm(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "master") {
		t.Errorf("parseSwarm without --master error = %v; want one about the master", err)
	}
}

// The noop runner answers ok without output; the real minion has no hooks,
// so it runs local.Run.
func TestNoopRun(t *testing.T) {
	called := false
	exit, err := noopRunner(0)(context.Background(), model.Command{Line: "exit 3"}, func(model.Stream, []byte) { called = true })
	if err != nil || exit.Code != 0 || called {
		t.Errorf("noopRunner(0) = %+v, %v, output %v; want exit 0, no error, no output", exit, err, called)
	}
	n := 0
	exit, err = noopRunner(200<<10+7)(context.Background(), model.Command{}, func(s model.Stream, p []byte) {
		if s == model.Stdout {
			n += len(p)
		}
	})
	if err != nil || exit.Code != 0 || n != 200<<10+7 {
		t.Errorf("noopRunner(200 KiB + 7) = %+v, %v, %d bytes; want exit 0 and every byte", exit, err, n)
	}
	var m Minion
	if m.hooks.run != nil {
		t.Errorf("a minion's zero hooks carry a runner")
	}
}

func TestCheckNoFile(t *testing.T) {
	cfg := swarmConfig{count: 1000, registerParallel: 16, exec: "noop"}
	if err := checkNoFile(cfg, 1000, testenv.Logger(t)); err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("1000 minions with 1000 descriptors: %v; want refused", err)
	}
	if err := checkNoFile(cfg, 2080, testenv.Logger(t)); err != nil {
		t.Errorf("1000 minions with 2080 descriptors: %v; want enough", err)
	}
	cfg.exec = "fork" // only warned: commands may not all run at once
	if err := checkNoFile(cfg, 2080, testenv.Logger(t)); err != nil {
		t.Errorf("1000 forking minions with 2080 descriptors: %v; want a warning only", err)
	}
}

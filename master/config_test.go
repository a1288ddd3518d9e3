package master

import (
	"testing"

	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/notify"
	"github.com/felix-ops/felix/transport/agent"
	"github.com/felix-ops/felix/transport/ssh"
)

// Components fall back to their own defaults when built with zero fields
// (tests, other programs); the master always passes its config. The two
// must say the same, so an operator's commented file describes what a
// component does: this test holds every pair together.
func TestComponentDefaultsMatchConfig(t *testing.T) {
	var c Config
	config.SetDefaults(&c)
	tests := []struct {
		key       string
		config    int64
		component int64
	}{
		{"exec.max_parallel", int64(c.Exec.MaxParallel), exec.DefaultLimit},
		{"exec.output_cap", int64(c.Exec.OutputCap), exec.DefaultOutputCap},
		{"exec.max_file_size", c.Exec.MaxFileSize, agent.DefaultMaxFileSize},
		{"callbacks.timeout", int64(c.Callbacks.Timeout.Duration), int64(notify.DefaultTimeout)},
		{"callbacks.max_age", int64(c.Callbacks.MaxAge.Duration), int64(notify.DefaultMaxAge)},
		{"ssh.idle_timeout", int64(c.SSH.IdleTimeout.Duration), int64(ssh.DefaultIdleTimeout)},
		{"ssh.max_conns", int64(c.SSH.MaxConns), ssh.DefaultMaxConns},
		{"files.max_size", c.Files.MaxSize, content.DefaultMaxFileSize},
		{"files.max_store_size", c.Files.MaxStoreSize, content.DefaultMaxTotalSize},
		{"files.keep_unused", int64(c.Files.KeepUnused.Duration), int64(content.DefaultKeepUnused)},
		{"bootstrap.timeout", int64(c.Bootstrap.Timeout.Duration), int64(bootstrap.DefaultTimeout)},
	}
	for _, tt := range tests {
		if tt.config != tt.component || tt.config == 0 {
			t.Errorf("%s: config default %d, component default %d; want them equal and set", tt.key, tt.config, tt.component)
		}
	}
}

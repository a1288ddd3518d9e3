package master

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/jobs"
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
		{"ssh.connect_timeout", int64(c.SSH.ConnectTimeout.Duration), int64(ssh.DefaultConnectTimeout)},
		{"ssh.facts_ttl", int64(c.SSH.FactsTTL.Duration), int64(jobs.DefaultFactsTTL)},
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

// The file an earlier release wrote on first run (master v0.1,
// testdata/master-first-run-0.1.toml) still loads, and means exactly the
// defaults of today's: its keys and values are pinned, independently of the
// struct tags the template is made from now.
func TestEarlierFirstRunFileLoads(t *testing.T) {
	old, _, err := LoadConfig(filepath.Join("testdata", "master-first-run-0.1.toml"))
	if err != nil {
		t.Fatalf("LoadConfig(v0.1 first-run file) = %v", err)
	}
	if err := old.Validate(); err != nil {
		t.Fatalf("Validate(v0.1 first-run file) = %v", err)
	}
	var now Config
	config.SetDefaults(&now)
	if err := now.Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v", err)
	}
	if got, want := fmt.Sprintf("%+v", old), fmt.Sprintf("%+v", now); got != want {
		t.Errorf("v0.1 first-run file loads as\n%s\nwant today's defaults\n%s", got, want)
	}
}

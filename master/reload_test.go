package master

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// TestReloadNotifierAndSSH: a reload hands callbacks.*, slack.* and ssh.*
// to the running notifier and SSH pool; a part either of them refuses
// leaves everything as it was; a key built into running parts is kept.
func TestReloadNotifierAndSSH(t *testing.T) {
	dir := t.TempDir()
	base := testConfig(dir)
	base.Slack.WebhookURL = "http://127.0.0.1:1/old"
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	r := startMaster(t, base)
	m := r.m
	if m.sshPool == nil {
		t.Fatal("the master runs without the SSH transport")
	}
	slackURL := func() string {
		for _, it := range m.notifier.Announce(inventory.Job{ID: "J1", State: model.JobDone}, model.JobSpec{}, nil) {
			if it.Kind == inventory.KindSlack {
				return it.URL
			}
		}
		return ""
	}
	loopbackOK := func() bool { return m.notifier.CheckURL(context.Background(), "http://127.0.0.1:9/hook") == nil }
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	newKH := filepath.Join(dir, "other", "known_hosts")

	tests := []struct {
		name        string
		change      func(*Config)
		wantChanged []string
		check       func() bool
	}{
		{"slack.webhook_url", func(c *Config) { c.Slack.WebhookURL = "http://127.0.0.1:1/new" },
			[]string{"slack.webhook_url"}, func() bool { return slackURL() == "http://127.0.0.1:1/new" }},
		{"callbacks.allow", func(c *Config) { c.Callbacks.Allow = []string{"127.0.0.0/8"} },
			[]string{"callbacks.allow"}, loopbackOK},
		{"callbacks.secret, timeout, max_age", func(c *Config) {
			c.Callbacks.Secret, c.Callbacks.Timeout.Duration, c.Callbacks.MaxAge.Duration = "rotated", 3*time.Second, time.Hour
		}, []string{"callbacks.secret", "callbacks.timeout", "callbacks.max_age"}, func() bool {
			nc := m.notifyCfg
			return nc.Secret == "rotated" && nc.Timeout == 3*time.Second && nc.MaxAge == time.Hour
		}},
		{"ssh.known_hosts", func(c *Config) { c.SSH.KnownHosts = newKH }, []string{"ssh.known_hosts"},
			func() bool { return exists(newKH) }},
		{"ssh.user, max_conns", func(c *Config) { c.SSH.User, c.SSH.MaxConns = "deploy", 10 }, []string{"ssh.user", "ssh.max_conns"},
			func() bool { return m.applied.SSH.User == "deploy" }},
		{"ssh.remote_tmp", func(c *Config) { c.SSH.RemoteTmp = "~/.felix/stage" }, []string{"ssh.remote_tmp"},
			func() bool { return m.applied.SSH.RemoteTmp == "~/.felix/stage" }},
		{"ssh.facts_ttl", func(c *Config) { c.SSH.FactsTTL.Duration = 5 * time.Minute }, []string{"ssh.facts_ttl"},
			func() bool { return m.jobs.FactsTTL() == 5*time.Minute }},
		{"a bad allow-list changes nothing", func(c *Config) {
			c.Slack.WebhookURL, c.Callbacks.Allow = "http://127.0.0.1:1/third", []string{"http://bad"}
		}, nil, func() bool { return slackURL() == "http://127.0.0.1:1/new" && loopbackOK() }},
		{"an unopenable known_hosts changes nothing", func(c *Config) {
			c.Slack.WebhookURL, c.Callbacks.Allow, c.SSH.KnownHosts = "http://127.0.0.1:1/third", nil, "/dev/null/known_hosts"
		}, nil, func() bool {
			return slackURL() == "http://127.0.0.1:1/new" && loopbackOK() && m.applied.SSH.KnownHosts == newKH
		}},
		{"retention.*", func(c *Config) { c.Retention.MaxAge.Duration, c.Retention.MaxJobs = 48*time.Hour, 5 },
			[]string{"retention.max_age", "retention.max_jobs"}, func() bool {
				r := m.retention.Load()
				return r.maxAge == 48*time.Hour && r.maxJobs == 5
			}},
		{"memory_limit", func(c *Config) { c.MemoryLimit = 3 << 30 }, []string{"memory_limit"},
			func() bool { return m.memLimit.base.Load() == 3<<30 && debug.SetMemoryLimit(-1) >= 3<<30 }},
		{"health.interval needs a restart", func(c *Config) { c.Health.Interval.Duration = time.Minute }, nil,
			func() bool { return m.applied.Health.Interval.Duration == time.Hour }},
	}
	next := base
	for _, tt := range tests {
		n := next
		n.Callbacks.Allow = slices.Clone(n.Callbacks.Allow)
		tt.change(&n)
		got := m.Reload(n)
		if !slices.Equal(got, tt.wantChanged) {
			t.Errorf("%s: Reload changed %q; want %q", tt.name, got, tt.wantChanged)
		}
		if !tt.check() {
			t.Errorf("%s: not in force after the reload", tt.name)
		}
		if tt.wantChanged != nil {
			next = n
		}
	}
}

package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/transport/agent"
)

// testConfig is a valid configuration listening on a free loopback port.
func testConfig(dataDir string) Config {
	var cfg Config
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", dataDir, "debug"
	cfg.Exec.MaxParallel, cfg.Exec.OutputCap = 100, 1<<20
	cfg.Exec.DefaultTimeout.Duration, cfg.Exec.MaxTimeout.Duration = time.Minute, time.Hour
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = time.Hour, 5*time.Second
	return cfg
}

// running is a master started in-process.
type running struct {
	m    *Master
	out  string // what New announced
	stop func() error
}

// startMaster runs a master on cfg until stop is called or the test ends.
func startMaster(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	m, err := New(ctx, cfg, testenv.Logger(t), &out)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				runErr = errors.New("Run did not return within 60s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return &running{m: m, out: out.String(), stop: stop}
}

// pinnedClient talks HTTPS to a master, trusting only fingerprint.
func pinnedClient(t *testing.T, fingerprint string) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: pki.ClientConfig(nil, fingerprint)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, body
}

// poll calls cond until it is true or the generous deadline passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadConfigWritesDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "master.toml")
	cfg, created, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if !created {
		t.Errorf("created = false on first run; want true")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("default config not written: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("config mode = %v; want 0600", perm)
	}
	data, _ := os.ReadFile(path)
	if string(data) != defaultConfig {
		t.Errorf("written config differs from the default template")
	}
	if !strings.Contains(string(data), "# ") {
		t.Errorf("default config has no comments")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config does not validate: %v", err)
	}
	if cfg.Listen != ":8443" || cfg.Exec.MaxParallel != 5000 || cfg.Exec.OutputCap != 1<<20 ||
		cfg.Health.Interval.Duration != 30*time.Second || cfg.Health.Timeout.Duration != 5*time.Second ||
		cfg.Exec.DefaultTimeout.Duration != time.Minute || cfg.Exec.MaxTimeout.Duration != 24*time.Hour {
		t.Errorf("default config = %+v; want the documented defaults", cfg)
	}
	if cfg.DataDir == "" || cfg.LogLevel != "info" {
		t.Errorf("DataDir = %q, LogLevel = %q; want filled in", cfg.DataDir, cfg.LogLevel)
	}

	// Second run: the file is read, not rewritten.
	if err := os.WriteFile(path, []byte("listen = \"127.0.0.1:9443\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, created, err = LoadConfig(path)
	if err != nil || created {
		t.Fatalf("LoadConfig again = created %v, err %v; want false, nil", created, err)
	}
	if cfg.Listen != "127.0.0.1:9443" {
		t.Errorf("Listen = %q; want the file's 127.0.0.1:9443", cfg.Listen)
	}
}

// TestConfigTemplate: the first-run file documents every key and decodes
// to the defaults of Config's tags, which Validate keeps.
func TestConfigTemplate(t *testing.T) {
	var want Config
	config.SetDefaults(&want)
	var got Config
	md, err := toml.Decode(defaultConfig, &got)
	if err != nil {
		t.Fatalf("defaultConfig does not decode: %v", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("defaultConfig has unknown keys %v", und)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaultConfig decodes to\n%+v\nwant the defaults\n%+v", got, want)
	}
	lines := strings.Split(defaultConfig, "\n")
	for i, l := range lines {
		isKey := l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[")
		isKey = isKey || strings.HasPrefix(l, "# ") && strings.HasSuffix(l, " = []")
		if isKey && (i == 0 || !strings.HasPrefix(lines[i-1], "# ")) {
			t.Errorf("key %q has no comment", l)
		}
	}
	// Validate fills in only what the machine decides; the rest stays.
	v := got
	if err := v.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	v.DataDir, v.SSH.KnownHosts, v.SSH.KeyDirs, v.Bootstrap.MinionDir = "", "", nil, ""
	if !reflect.DeepEqual(v, want) {
		t.Errorf("Validate changed the defaults:\n%+v\nwant\n%+v", v, want)
	}
}

func TestLoadConfigUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.toml")
	if err := os.WriteFile(path, []byte("listne = \":1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "listne") {
		t.Errorf("LoadConfig with a misspelt key: err = %v; want one naming listne", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, "listen"},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen"},
		{"max_parallel 0", func(c *Config) { c.Exec.MaxParallel = 0 }, "max_parallel"},
		{"max_parallel negative", func(c *Config) { c.Exec.MaxParallel = -1 }, "max_parallel"},
		{"output_cap small", func(c *Config) { c.Exec.OutputCap = 1023 }, "output_cap"},
		{"output_cap minimum", func(c *Config) { c.Exec.OutputCap = 1024 }, ""},
		{"health interval 0", func(c *Config) { c.Health.Interval.Duration = 0 }, "health"},
		{"health timeout 0", func(c *Config) { c.Health.Timeout.Duration = 0 }, "health"},
		{"files timeout over max_timeout", func(c *Config) {
			c.Exec.MaxTimeout.Duration, c.Files.Timeout.Duration = time.Minute, time.Hour
		}, "files.timeout"},
		{"files timeout defaults within max_timeout", func(c *Config) {
			c.Exec.MaxTimeout.Duration, c.Files.Timeout.Duration = time.Minute, 0
		}, ""},
		{"files max_size over max_store_size", func(c *Config) { c.Files.MaxSize, c.Files.MaxStoreSize = 2<<30, 1<<30 }, "files.max_size"},
		{"debug_listen loopback", func(c *Config) { c.DebugListen = "127.0.0.1:6060" }, ""},
		{"debug_listen ipv6 loopback", func(c *Config) { c.DebugListen = "[::1]:0" }, ""},
		{"debug_listen all addresses", func(c *Config) { c.DebugListen = ":6060" }, "debug_listen"},
		{"debug_listen public", func(c *Config) { c.DebugListen = "10.0.0.1:6060" }, "debug_listen"},
		{"debug_listen name", func(c *Config) { c.DebugListen = "localhost:6060" }, "debug_listen"},
		{"memory_limit bytes", func(c *Config) { c.MemoryLimit = 256 << 20 }, ""},
		{"memory_limit off", func(c *Config) { c.MemoryLimit = -1 }, ""},
		{"memory_limit negative", func(c *Config) { c.MemoryLimit = -2 }, "memory_limit"},
		{"log_format json", func(c *Config) { c.LogFormat = "json" }, ""},
		{"log_format unknown", func(c *Config) { c.LogFormat = "logfmt" }, "log_format"},
		{"metrics_listen loopback", func(c *Config) { c.MetricsListen = "127.0.0.1:9100" }, ""},
		{"metrics_listen all addresses by name", func(c *Config) { c.MetricsListen = "0.0.0.0:9100" }, ""},
		{"metrics_listen port only", func(c *Config) { c.MetricsListen = ":9100" }, ""},
		{"metrics_listen without port", func(c *Config) { c.MetricsListen = "127.0.0.1" }, "metrics_listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// A bare metrics_listen port listens on loopback; a named address stays.
func TestMetricsListenDefaultsToLoopback(t *testing.T) {
	for in, want := range map[string]string{":9100": "127.0.0.1:9100", "0.0.0.0:9100": "0.0.0.0:9100", "[::1]:9100": "[::1]:9100", "": ""} {
		cfg := testConfig(t.TempDir())
		cfg.MetricsListen = in
		if err := cfg.Validate(); err != nil || cfg.MetricsListen != want {
			t.Errorf("metrics_listen %q: Validate = %v, listening on %q; want %q", in, err, cfg.MetricsListen, want)
		}
	}
}

func TestConfigValidateDefaults(t *testing.T) {
	var cfg Config
	cfg.Listen = ":8443"
	cfg.Exec.MaxParallel, cfg.Exec.OutputCap = 1, 1024
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = time.Second, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.DataDir == "" {
		t.Errorf("DataDir not defaulted")
	}
	if cfg.LogLevel != "info" {
		t.Errorf("LogLevel = %q; want info", cfg.LogLevel)
	}
	if cfg.Exec.DefaultTimeout.Duration != time.Minute {
		t.Errorf("DefaultTimeout = %v; want 1m", cfg.Exec.DefaultTimeout.Duration)
	}
	if cfg.Exec.MaxTimeout.Duration != 24*time.Hour {
		t.Errorf("MaxTimeout = %v; want 24h", cfg.Exec.MaxTimeout.Duration)
	}
	if cfg.Files.MaxSize != 1<<30 || cfg.Files.MaxStoreSize != 10<<30 || cfg.Files.KeepUnused.Duration != 7*24*time.Hour ||
		cfg.Files.Timeout.Duration != time.Hour {
		t.Errorf("Files = %+v; want 1 GiB, 10 GiB, 168h, 1h", cfg.Files)
	}
}

func TestMasterRun(t *testing.T) {
	dir := t.TempDir()
	r := startMaster(t, testConfig(dir))

	// The first start keeps the admin token 0600 and says where, without
	// printing it.
	tokPath := filepath.Join(dir, tokenFile)
	if !strings.Contains(r.out, "admin API token written to "+tokPath) {
		t.Fatalf("first New did not say where the admin token is:\n%s", r.out)
	}
	if !strings.Contains(r.out, r.m.Fingerprint()) {
		t.Errorf("New did not print the fingerprint %s:\n%s", r.m.Fingerprint(), r.out)
	}
	if strings.Contains(r.out, "fat_") {
		t.Errorf("the admin token was printed:\n%s", r.out)
	}
	st, err := os.Stat(tokPath)
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s mode = %v; want 0600", tokenFile, perm)
	}
	b, _ := os.ReadFile(tokPath)
	token := strings.TrimSpace(string(b))
	if !strings.HasPrefix(token, "fat_") {
		t.Fatalf("%s holds %q; want a fat_ token", tokenFile, b)
	}

	c := pinnedClient(t, r.m.Fingerprint())
	base := "https://" + r.m.Addr().String()
	if code, body := get(t, c, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz = %d %s; want 200", code, body)
	}
	code, body := get(t, c, base+"/api/v1/minions", token)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/minions = %d %s; want 200", code, body)
	}
	var list wire.MinionList
	if err := json.Unmarshal(body, &list); err != nil || list.Minions == nil || len(list.Minions) != 0 {
		t.Errorf("minion list = %s (%v); want an empty list", body, err)
	}
	if code, body := get(t, c, base+"/api/v1/minions", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/minions without a token = %d %s; want 401", code, body)
	}
	if code, body := get(t, c, base+"/api/v1/minions", "fat_wrong"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/minions with a wrong token = %d %s; want 401", code, body)
	}

	// A client pinning another certificate is refused in the handshake.
	other := pinnedClient(t, "sha256:"+strings.Repeat("0", 64))
	if resp, err := other.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("GET with a wrong pin succeeded")
	} else if !errors.Is(err, pki.ErrFingerprintMismatch) {
		t.Errorf("GET with a wrong pin: %v; want ErrFingerprintMismatch", err)
	}

	addr := r.m.Addr().String()
	if err := r.stop(); err != nil {
		t.Fatalf("Run after cancel = %v; want nil", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		conn.Close()
		t.Errorf("master still accepts connections on %s after Run returned", addr)
	}

	// Second start on the same data directory: same certificate, no new
	// token announced, and the first token still works.
	r2 := startMaster(t, testConfig(dir))
	if strings.Contains(r2.out, "admin API token") || strings.Contains(r2.out, "fat_") {
		t.Errorf("second New announced a token again:\n%s", r2.out)
	}
	if r2.m.Fingerprint() != r.m.Fingerprint() {
		t.Errorf("fingerprint changed across restarts: %s then %s", r.m.Fingerprint(), r2.m.Fingerprint())
	}
	c2 := pinnedClient(t, r.m.Fingerprint())
	if code, body := get(t, c2, "https://"+r2.m.Addr().String()+"/api/v1/minions", token); code != http.StatusOK {
		t.Errorf("first token after restart: GET /api/v1/minions = %d %s; want 200", code, body)
	}
	if err := r2.stop(); err != nil {
		t.Errorf("second Run = %v; want nil", err)
	}
}

func TestNewListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t.TempDir())
	cfg.Listen = ln.Addr().String() // taken
	m, err := New(context.Background(), cfg, testenv.Logger(t), io.Discard)
	if err == nil {
		m.ln.Close()
		m.store.Close()
		t.Fatalf("New on a taken address succeeded")
	}
}

// runMain runs Main and returns its status, stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	t.Logf("master %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

func TestMainToken(t *testing.T) {
	dir := t.TempDir()
	conf, data := filepath.Join(dir, "master.toml"), filepath.Join(dir, "data")
	common := []string{"--config", conf, "--data-dir", data}

	code, out, _ := runMain(t, append([]string{"token", "join"}, append(common, "--auto-accept", "--ttl", "1h")...)...)
	if code != 0 {
		t.Fatalf("token join exit %d; want 0", code)
	}
	if _, err := os.Stat(conf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token join wrote a config file (stat: %v); only start writes one", err)
	}
	join := strings.TrimSpace(out)
	if !strings.HasPrefix(join, "fjt_") || strings.ContainsAny(join, " \n") {
		t.Fatalf("token join printed %q; want one fjt_ token", out)
	}

	code, out, _ = runMain(t, append([]string{"token", "api", "--name", "ops"}, common...)...)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "fat_") {
		t.Fatalf("token api --name ops = %d %q; want 0 and a fat_ token", code, out)
	}
	api := strings.TrimSpace(out)

	// Both are in the store: the join token admits (and accepts) a minion,
	// the API token authenticates.
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(data, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id, err := pki.LoadOrCreate(t.TempDir(), "minion", "web1", nil)
	if err != nil {
		t.Fatal(err)
	}
	mn, created, err := store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(join),
		Minion: inventory.Minion{ID: "web1", Hostname: "web1", Addr: "127.0.0.1:4510", Facts: "{}",
			CertPEM: string(id.CertPEM), Fingerprint: id.Fingerprint}}, time.Now())
	if err != nil || !created || mn.State != model.KeyAccepted {
		t.Errorf("Register with the join token = %s, created %v, %v; want accepted, true, nil", mn.State, created, err)
	}
	// --ttl 1h: expired two hours later.
	_, _, err = store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(join),
		Minion: inventory.Minion{ID: "web2", Hostname: "web2", Addr: "127.0.0.1:4510", Facts: "{}",
			CertPEM: string(id.CertPEM), Fingerprint: id.Fingerprint}}, time.Now().Add(2*time.Hour))
	if !errors.Is(err, inventory.ErrInvalidToken) {
		t.Errorf("Register with the join token after its ttl: %v; want ErrInvalidToken", err)
	}
	if tok, err := store.APIToken(ctx, inventory.HashToken(api), time.Now()); err != nil || tok.Name != "ops" {
		t.Errorf("APIToken = %+v, %v; want the ops token", tok, err)
	}

	// A second token with the same name conflicts.
	if code, _, stderr := runMain(t, append([]string{"token", "api", "--name", "ops"}, common...)...); code != 1 || stderr == "" {
		t.Errorf("token api --name ops again = %d, stderr %q; want 1 and an error", code, stderr)
	}
}

func TestMainErrors(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--config", filepath.Join(dir, "master.toml"), "--data-dir", filepath.Join(dir, "data")}
	tests := []struct {
		args    []string
		code    int
		errWant string // substring of stderr; "" for no check
	}{
		{append([]string{"token", "api"}, common...), 1, "--name"},
		{append([]string{"token"}, common...), 1, "token join"},
		{append([]string{"token", "bogus"}, common...), 1, "token join"},
		{append([]string{"token", "join", "--uses", "-2"}, common...), 1, "--uses"},
		{append([]string{"token", "api", "--name", "x", "--ttl", "-1h"}, common...), 1, "negative"},
		{append([]string{"status"}, common...), 1, "not running"},
		{append([]string{"stop"}, common...), 1, "not running"},
		{append([]string{"status", "extra"}, common...), 1, "extra"},
		{append([]string{"status", "--no-such-flag"}, common...), 1, "no-such-flag"},
		{[]string{"bogus"}, 2, "bogus"},
		{nil, 2, "Usage"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runMain(t, tt.args...)
		if code != tt.code {
			t.Errorf("master %v = %d; want %d", tt.args, code, tt.code)
		}
		if !strings.Contains(stderr, tt.errWant) {
			t.Errorf("master %v: stderr %q; want it to mention %q", tt.args, stderr, tt.errWant)
		}
		if tt.code == 1 && !strings.Contains(tt.errWant, "flag") {
			if lines := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; lines != 1 {
				t.Errorf("master %v: stderr has %d lines; want one:\n%s", tt.args, lines, stderr)
			}
		}
		if tt.code != 0 && strings.Contains(stdout, "fjt_") {
			t.Errorf("master %v printed a token on failure", tt.args)
		}
	}
	// Refused commands open no inventory.
	if _, err := os.Stat(filepath.Join(dir, "data", dbFile)); !os.IsNotExist(err) {
		t.Errorf("a refused command created the inventory: %v", err)
	}
}

func TestMainVersionHelp(t *testing.T) {
	if code, out, _ := runMain(t, "version"); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("master version = %d %q; want 0 and a version", code, out)
	}
	if code, out, _ := runMain(t, "help"); code != 0 || !strings.Contains(out, "token join") {
		t.Errorf("master help = %d; want 0 and the usage", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMainStartStatus(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	common := []string{"--config", filepath.Join(dir, "master.toml"), "--data-dir", data}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"start", "--listen", "127.0.0.1:0", "--log-level", "error"}, common...), &stdout, &stderr)
	}()
	pidPath := filepath.Join(data, pidFile)
	poll(t, "the pid file", func() bool {
		select {
		case code := <-done:
			t.Fatalf("master start exited %d early:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		_, err := os.Stat(pidPath)
		return err == nil
	})
	out := stdout.String()
	for _, want := range []string{"wrote default config", "master fingerprint: sha256:", "admin API token written to"} {
		if !strings.Contains(out, want) {
			t.Errorf("master start output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fat_") {
		t.Errorf("master start printed the admin token:\n%s", out)
	}
	code, sout, _ := runMain(t, append([]string{"status"}, common...)...)
	if code != 0 || !strings.Contains(sout, "running") || !strings.Contains(sout, "master fingerprint: sha256:") {
		t.Errorf("master status while running = %d %q; want 0, running and the fingerprint", code, sout)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("master start after cancel exited %d; want 0\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("master start did not return after cancel")
	}
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestHealth(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = 200*time.Millisecond, 2*time.Second
	r := startMaster(t, cfg)
	ctx := context.Background()
	log := testenv.Logger(t)

	const id = "health1"
	mid, err := pki.LoadOrCreate(t.TempDir(), "minion", id, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := agent.NewGRPCServer(mid, r.m.Fingerprint, agent.NewServer(id, "test", log))
	served := make(chan struct{})
	go func() {
		defer close(served)
		g.Serve(ln)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-served
	})

	store := r.m.Store()
	tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(tok), Minion: inventory.Minion{
		ID: id, Hostname: id, Addr: ln.Addr().String(), CertPEM: string(mid.CertPEM), Fingerprint: mid.Fingerprint,
		Facts: "{}"}}, time.Now())
	if err != nil {
		t.Fatalf("Register: %v", err)
	}

	minion := func() inventory.Minion {
		mn, err := store.Minion(ctx, id)
		if err != nil {
			t.Fatalf("Minion(%s): %v", id, err)
		}
		return mn
	}
	poll(t, "health ok", func() bool {
		mn := minion()
		return mn.Health == model.HealthOK && !mn.LastSeen.IsZero()
	})
	seen := minion().LastSeen

	g.Stop()
	<-served
	poll(t, "health unreachable", func() bool { return minion().Health == model.HealthUnreachable })
	if mn := minion(); mn.LastSeen.Before(seen) {
		t.Errorf("LastSeen went back from %v to %v when the minion became unreachable", seen, mn.LastSeen)
	}
	if mn := minion(); mn.LastSeen.IsZero() {
		t.Errorf("LastSeen cleared when the minion became unreachable")
	}
}

// TestHealthSkipsPending: a minion not accepted is never pinged.
func TestHealthSkipsPending(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = 50*time.Millisecond, time.Second
	r := startMaster(t, cfg)
	ctx := context.Background()
	store := r.m.Store()
	mid, err := pki.LoadOrCreate(t.TempDir(), "minion", "pending1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// An address nothing listens on: a ping would mark it unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(tok), Minion: inventory.Minion{
		ID: "pending1", Hostname: "pending1", Addr: addr, CertPEM: string(mid.CertPEM), Fingerprint: mid.Fingerprint,
		Facts: "{}"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A second, accepted, unreachable minion shows that health rounds ran.
	tok2, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(tok2), Minion: inventory.Minion{
		ID: "accepted1", Hostname: "accepted1", Addr: addr, CertPEM: string(mid.CertPEM), Fingerprint: mid.Fingerprint,
		Facts: "{}"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "accepted1 unreachable", func() bool {
		mn, err := store.Minion(ctx, "accepted1")
		return err == nil && mn.Health == model.HealthUnreachable
	})
	if mn, err := store.Minion(ctx, "pending1"); err != nil || mn.Health != model.HealthUnknown {
		t.Errorf("pending minion health = %q, %v; want %q (never pinged)", mn.Health, err, model.HealthUnknown)
	}
}

// With debug_listen the master serves Go's profiles there, and only there.
func TestDebugListen(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.DebugListen = "127.0.0.1:0"
	r := startMaster(t, cfg)
	base := "http://" + r.m.debugLn.Addr().String()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap?debug=1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s = %d (%d bytes); want 200 with a profile", path, resp.StatusCode, len(body))
		}
	}
	if resp, err := http.Get(base + "/api/v1/jobs"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /api/v1/jobs on the debug listener = %d; want 404 (the API is not served there)", resp.StatusCode)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(base + "/debug/pprof/"); err == nil {
		t.Error("the debug listener still answers after the master stopped")
	}
}

// TestDataDirPrivate: a data directory a package made 0755, with a
// database an older version left 0644, is made 0700 with every file in it
// 0600 — SQLite's -wal and -shm included — before anything is read.
func TestDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "master")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	r := startMaster(t, testConfig(dir))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, dbFile), 0o644)
	r = startMaster(t, testConfig(dir))
	if _, err := r.m.store.SchemaVersion(context.Background()); err != nil { // the WAL is in use
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v; want 0700", err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	seen := map[string]bool{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		seen[e.Name()] = true
		if p := fi.Mode().Perm(); p != 0o600 {
			t.Errorf("%s is %#o, want 0600", e.Name(), p)
		}
	}
	for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", tokenFile, certName + ".key"} {
		if !seen[name] {
			t.Errorf("no %s in the data dir (have %v)", name, seen)
		}
	}
}

// TestTokenJoinHint: once the master has its certificate, token join says
// on stderr how a server joins with the fingerprint pinned and the token
// in a file; stdout stays the token alone.
func TestTokenJoinHint(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	r := startMaster(t, testConfig(data))
	fp := r.m.Fingerprint()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMain(t, "token", "join", "--config", filepath.Join(dir, "master.toml"), "--data-dir", data,
		"--listen", "0.0.0.0:8443")
	if code != 0 || !strings.HasPrefix(out, "fjt_") || strings.Count(out, "\n") != 1 {
		t.Fatalf("token join = %d %q; want the token alone on stdout", code, out)
	}
	want := "minion start --master https://MASTER-HOST:8443 --master-fingerprint " + fp + " --join-token-file "
	if !strings.Contains(errOut, want) {
		t.Errorf("token join stderr = %q; want %q", errOut, want)
	}
}

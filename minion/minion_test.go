package minion_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/master"
	"github.com/felix-ops/felix/minion"
	"github.com/felix-ops/felix/model"
)

// startMaster runs a real master in-process on a free loopback port with its
// own data directory, until the test ends.
func startMaster(t *testing.T, health time.Duration) *master.Master {
	t.Helper()
	var cfg master.Config
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", t.TempDir(), "debug"
	cfg.Exec.MaxParallel, cfg.Exec.OutputCap = 100, 1<<20
	cfg.Exec.DefaultTimeout.Duration, cfg.Exec.MaxTimeout.Duration = time.Minute, time.Hour
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = health, 2*time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := master.New(ctx, cfg, testenv.Logger(t), io.Discard)
	if err != nil {
		cancel()
		t.Fatalf("master.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("master Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("master Run did not return after cancel")
		}
	})
	return m
}

func joinToken(t *testing.T, m *master.Master, auto bool) string {
	t.Helper()
	tok, _, err := m.Store().CreateJoinToken(context.Background(), inventory.JoinTokenSpec{AutoAccept: auto}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// minionConfig is a valid minion configuration for master m.
func minionConfig(t *testing.T, m *master.Master, id, token string) config.Minion {
	t.Helper()
	cfg := config.Minion{Master: "https://" + m.Addr().String(), JoinToken: token, ID: id, Listen: "127.0.0.1:0",
		DataDir: t.TempDir()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newMinion(t *testing.T, cfg config.Minion) *minion.Minion {
	t.Helper()
	mn, err := minion.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("minion.New: %v", err)
	}
	return mn
}

// grpcAddr is the listener address Register reports (nothing listens there;
// Register only tells the master about it).
var grpcAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4510}

func readPin(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "master.fingerprint"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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

func TestTrustOnFirstUse(t *testing.T) {
	ctx := context.Background()
	ma := startMaster(t, time.Hour)
	cfg := minionConfig(t, ma, "tofu1", joinToken(t, ma, true))
	mn := newMinion(t, cfg)
	if fp := mn.MasterFingerprint(); fp != "" {
		t.Fatalf("MasterFingerprint before first use = %q; want empty", fp)
	}
	if err := mn.Register(ctx, grpcAddr); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got := mn.MasterFingerprint(); got != ma.Fingerprint() {
		t.Errorf("MasterFingerprint = %q; want the master's %q", got, ma.Fingerprint())
	}
	pin := readPin(t, cfg.DataDir)
	if strings.TrimSpace(pin) != ma.Fingerprint() {
		t.Errorf("%s = %q; want %q", "master.fingerprint", pin, ma.Fingerprint())
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "master.fingerprint")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode: %v, %v; want 0600", "master.fingerprint", st.Mode(), err)
	}
	got, err := ma.Store().Minion(ctx, "tofu1")
	if err != nil {
		t.Fatalf("minion not in the store: %v", err)
	}
	if got.Fingerprint != mn.Fingerprint() || got.State != model.KeyAccepted || got.Addr != "127.0.0.1:4510" {
		t.Errorf("stored minion = fingerprint %s state %s addr %s; want %s accepted 127.0.0.1:4510",
			got.Fingerprint, got.State, got.Addr, mn.Fingerprint())
	}

	// Registering again needs no token: the pinned key is the proof.
	cfg.JoinToken = ""
	again := newMinion(t, cfg)
	if got := again.MasterFingerprint(); got != ma.Fingerprint() {
		t.Fatalf("a new minion.Minion on the same data dir pins %q; want %q", got, ma.Fingerprint())
	}
	if again.Fingerprint() != mn.Fingerprint() {
		t.Errorf("minion certificate changed across New: %s then %s", mn.Fingerprint(), again.Fingerprint())
	}
	if err := again.Register(ctx, grpcAddr); err != nil {
		t.Fatalf("Register again without a token: %v", err)
	}

	// Another master (another certificate) is refused for good, and the
	// pin is kept.
	mb := startMaster(t, time.Hour)
	cfg.Master = "https://" + mb.Addr().String()
	cfg.JoinToken = joinToken(t, mb, true)
	moved := newMinion(t, cfg)
	err = moved.Register(ctx, grpcAddr)
	if !errors.Is(err, minion.ErrPermanent) {
		t.Fatalf("Register with another master: %v; want ErrPermanent", err)
	}
	if !strings.Contains(err.Error(), mb.Fingerprint()) {
		t.Errorf("error %q does not name the certificate seen %s", err, mb.Fingerprint())
	}
	if got := readPin(t, cfg.DataDir); got != pin {
		t.Errorf("%s changed to %q; want %q kept", "master.fingerprint", got, pin)
	}
	if got := moved.MasterFingerprint(); got != ma.Fingerprint() {
		t.Errorf("MasterFingerprint = %q after refusal; want %q", got, ma.Fingerprint())
	}
	if _, err := mb.Store().Minion(ctx, "tofu1"); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("the other master registered the minion anyway: %v", err)
	}
}

func TestConfiguredFingerprintMismatch(t *testing.T) {
	ma := startMaster(t, time.Hour)
	cfg := minionConfig(t, ma, "pin1", joinToken(t, ma, true))
	cfg.MasterFingerprint = "sha256:" + strings.Repeat("ab", 32)
	mn := newMinion(t, cfg)
	if err := mn.Register(context.Background(), grpcAddr); !errors.Is(err, minion.ErrPermanent) {
		t.Fatalf("Register with a wrong configured pin: %v; want ErrPermanent", err)
	}
	if pin := readPin(t, cfg.DataDir); pin != "" {
		t.Errorf("%s written (%q) although a fingerprint is configured", "master.fingerprint", pin)
	}

	// The right one configured works, and is not written to the pin file.
	cfg.MasterFingerprint = ma.Fingerprint()
	mn = newMinion(t, cfg)
	if err := mn.Register(context.Background(), grpcAddr); err != nil {
		t.Fatalf("Register with the right configured pin: %v", err)
	}
	if pin := readPin(t, cfg.DataDir); pin != "" {
		t.Errorf("%s written (%q) although a fingerprint is configured", "master.fingerprint", pin)
	}
}

func TestRegisterRefused(t *testing.T) {
	ma := startMaster(t, time.Hour)
	tests := []struct {
		name, token string
	}{
		{"bad join token", "fjt_not-a-real-token"},
		{"no join token for a new id", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := minionConfig(t, ma, "refused1", tt.token)
			mn := newMinion(t, cfg)
			err := mn.Register(context.Background(), grpcAddr)
			if !errors.Is(err, minion.ErrPermanent) {
				t.Fatalf("Register = %v; want ErrPermanent", err)
			}
			if !strings.Contains(err.Error(), "401") {
				t.Errorf("Register = %v; want it to report 401", err)
			}
			if pin := readPin(t, cfg.DataDir); pin != "" {
				t.Errorf("%s written (%q) by a refused registration", "master.fingerprint", pin)
			}
			if fp := mn.MasterFingerprint(); fp != "" {
				t.Errorf("MasterFingerprint = %q after a refused registration; want empty", fp)
			}
		})
	}

	// An id already registered with another certificate: 409, permanent.
	tok := joinToken(t, ma, true)
	first := newMinion(t, minionConfig(t, ma, "taken1", tok))
	if err := first.Register(context.Background(), grpcAddr); err != nil {
		t.Fatal(err)
	}
	impostor := newMinion(t, minionConfig(t, ma, "taken1", tok))
	if err := impostor.Register(context.Background(), grpcAddr); !errors.Is(err, minion.ErrPermanent) {
		t.Errorf("Register of a taken id with another certificate = %v; want ErrPermanent", err)
	}
}

func TestRegisterUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := config.Minion{Master: "https://" + addr, JoinToken: "fjt_x", ID: "lonely1", Listen: "127.0.0.1:0", DataDir: t.TempDir()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mn := newMinion(t, cfg)
	err = mn.Register(context.Background(), grpcAddr)
	if err == nil {
		t.Fatalf("Register with no master succeeded")
	}
	if errors.Is(err, minion.ErrPermanent) {
		t.Errorf("Register with no master = %v; want a retryable error, not ErrPermanent", err)
	}
	if pin := readPin(t, cfg.DataDir); pin != "" {
		t.Errorf("%s written (%q) without a master", "master.fingerprint", pin)
	}
}

func TestRun(t *testing.T) {
	ma := startMaster(t, 200*time.Millisecond)
	cfg := minionConfig(t, ma, "run1", joinToken(t, ma, true))
	mn := newMinion(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mn.Run(ctx) }()

	store := ma.Store()
	var got inventory.Minion
	poll(t, "the minion to register", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		var err error
		got, err = store.Minion(context.Background(), "run1")
		return err == nil
	})
	host, port, err := net.SplitHostPort(got.Addr)
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Errorf("registered address %q; want 127.0.0.1 and the port actually listened on", got.Addr)
	}
	if got.Fingerprint != mn.Fingerprint() || got.State != model.KeyAccepted {
		t.Errorf("registered fingerprint %s state %s; want %s accepted", got.Fingerprint, got.State, mn.Fingerprint())
	}
	// The master's health check dials that address over mutual TLS: "ok"
	// proves the port is the real one and each side accepts the other's pin.
	poll(t, "the master to reach the minion", func() bool {
		m, err := store.Minion(context.Background(), "run1")
		return err == nil && m.Health == model.HealthOK
	})
	if mn.MasterFingerprint() != ma.Fingerprint() {
		t.Errorf("MasterFingerprint = %q; want %q", mn.MasterFingerprint(), ma.Fingerprint())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v; want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
	if conn, err := net.DialTimeout("tcp", got.Addr, 5*time.Second); err == nil {
		conn.Close()
		t.Errorf("minion still listens on %s after Run returned", got.Addr)
	}
}

func TestRunRefused(t *testing.T) {
	ma := startMaster(t, time.Hour)
	cfg := minionConfig(t, ma, "run2", "fjt_bogus")
	mn := newMinion(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mn.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, minion.ErrPermanent) {
			t.Errorf("Run with a bad token = %v; want ErrPermanent", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run with a bad token did not give up")
	}
}

func TestRunListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Minion{Master: "https://127.0.0.1:1", ID: "busy1", Listen: ln.Addr().String(), DataDir: t.TempDir()}
	mn := newMinion(t, cfg)
	if err := mn.Run(context.Background()); err == nil {
		t.Errorf("Run on a taken address succeeded")
	}
}

func TestNewBadPinFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "master.fingerprint"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := minion.New(config.Minion{ID: "x", Listen: ":0", DataDir: dir}, testenv.Logger(t)); err == nil {
		t.Errorf("minion.New with a corrupt %s succeeded", "master.fingerprint")
	}
}

// runMain runs minion.Main and returns its status, stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := minion.Main(context.Background(), args, &stdout, &stderr)
	t.Logf("minion %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

func TestMainCLI(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--config", filepath.Join(dir, "minion.toml"), "--data-dir", filepath.Join(dir, "data")}

	code, _, stderr := runMain(t, append([]string{"start"}, common...)...)
	if code != 1 {
		t.Errorf("minion start without master = %d; want 1", code)
	}
	if lines := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; lines != 1 || !strings.Contains(stderr, "master") {
		t.Errorf("minion start without master: stderr %q; want one line mentioning master", stderr)
	}
	if code, _, stderr := runMain(t, append([]string{"start", "--master", "http://x:1"}, common...)...); code != 1 || !strings.Contains(stderr, "https") {
		t.Errorf("minion start --master http://… = %d %q; want 1 and an error about https", code, stderr)
	}
	if code, _, _ := runMain(t, append([]string{"status"}, common...)...); code != 1 {
		t.Errorf("minion status when not running = %d; want 1", code)
	}
	if code, _, _ := runMain(t, "bogus"); code != 2 {
		t.Errorf("minion bogus = %d; want 2", code)
	}
	if code, _, _ := runMain(t); code != 2 {
		t.Errorf("minion without arguments = %d; want 2", code)
	}
	if code, out, _ := runMain(t, "version"); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("minion version = %d %q; want 0 and a version", code, out)
	}
}

// TestJoinTokenFile: the token can come from a file instead of a flag
// (visible in ps) or the config; once accepted, the file may go.
func TestJoinTokenFile(t *testing.T) {
	ctx := context.Background()
	ma := startMaster(t, time.Hour)
	file := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(file, []byte(joinToken(t, ma, true)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := minionConfig(t, ma, "tokfile1", "")
	cfg.JoinTokenFile = file
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mn := newMinion(t, cfg)
	if err := mn.Register(ctx, grpcAddr); err != nil {
		t.Fatalf("Register with the token from a file: %v", err)
	}
	got, err := ma.Store().Minion(ctx, "tokfile1")
	if err != nil || got.State != model.KeyAccepted {
		t.Fatalf("minion after registering = %+v, %v; want accepted", got, err)
	}
	os.Remove(file)
	if err := mn.Register(ctx, grpcAddr); err != nil {
		t.Errorf("Register again once accepted, the token file gone: %v", err)
	}

	bad := cfg
	bad.JoinToken = "fjt_x"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("Validate with join_token and join_token_file = %v; want refused", err)
	}
	bad = cfg
	bad.JoinTokenFile = "relative/token"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("Validate with a relative join_token_file = %v; want refused", err)
	}
}

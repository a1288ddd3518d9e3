package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// Identities are made once for the whole package's tests.
var (
	idOnce                     sync.Once
	masterID, minionID, evilID *pki.Identity
	idErr                      error
)

func identities(t testing.TB) (master, minion, evil *pki.Identity) {
	t.Helper()
	idOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agent-test-pki-")
		if err != nil {
			idErr = err
			return
		}
		defer os.RemoveAll(dir)
		if masterID, idErr = pki.LoadOrCreate(dir, "master", "felix-master", nil); idErr != nil {
			return
		}
		if minionID, idErr = pki.LoadOrCreate(dir, "minion", "m1", []string{"127.0.0.1"}); idErr != nil {
			return
		}
		evilID, idErr = pki.LoadOrCreate(dir, "evil", "felix-master", nil)
	})
	if idErr != nil {
		t.Fatalf("make identities: %v", idErr)
	}
	return masterID, minionID, evilID
}

// harness is a minion gRPC server on 127.0.0.1 and a master pool for it.
type harness struct {
	master, minion, evil *pki.Identity
	ln                   *countingListener
	grpc                 *grpc.Server
	pool                 *Pool        // presents the master identity
	target               model.Target // the minion, pinned correctly
	tempDir              string       // where the server makes job directories
	serverPin            atomic.Value
	served               chan error
	stopOnce             sync.Once
}

// newHarness starts the minion server; opts adjust it before it serves.
func newHarness(t testing.TB, opts ...func(*Server)) *harness {
	t.Helper()
	return newHarnessServing(t, nil, opts...)
}

// newHarnessServing is newHarness serving what wrap makes of the minion
// server (a minion that differs in some RPC); nil serves it as it is.
func newHarnessServing(t testing.TB, wrap func(*Server) felixv1.MinionServer, opts ...func(*Server)) *harness {
	t.Helper()
	h := &harness{served: make(chan error, 1), tempDir: t.TempDir()}
	h.master, h.minion, h.evil = identities(t)
	h.serverPin.Store(h.master.Fingerprint)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.ln = &countingListener{Listener: ln}
	srv := NewServer("m1", "test", testenv.Logger(t))
	srv.TempDir = h.tempDir
	for _, o := range opts {
		o(srv)
	}
	var served felixv1.MinionServer = srv
	if wrap != nil {
		served = wrap(srv)
	}
	h.grpc = NewGRPCServer(h.minion, func() string { return h.serverPin.Load().(string) }, served)
	go func() { h.served <- h.grpc.Serve(h.ln) }()
	t.Cleanup(h.stop)
	h.pool = NewPool(h.master)
	t.Cleanup(func() { h.pool.Close() })
	h.target = model.Target{ID: "m1", Addr: ln.Addr().String(), Fingerprint: h.minion.Fingerprint}
	return h
}

// stop stops the server; running handlers are waited for.
func (h *harness) stop() {
	h.stopOnce.Do(func() {
		h.grpc.GracefulStop()
		<-h.served
	})
}

// testCtx is a generous safety net so a broken test fails instead of hanging;
// no test asserts on timing.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// output gathers an Exec's chunks per stream.
type output struct {
	mu             sync.Mutex // protects stdout and stderr
	stdout, stderr bytes.Buffer
}

func (o *output) add(s model.Stream, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s == model.Stderr {
		o.stderr.Write(p)
	} else {
		o.stdout.Write(p)
	}
}

func (o *output) strings() (string, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stdout.String(), o.stderr.String()
}

func TestExec(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name       string
		cmd        model.Command
		wantCode   int
		wantStdout string
		wantStderr string
		wantSignal string
		wantTimed  bool
	}{
		{name: "streams and exit code", cmd: model.Command{Line: "echo out; echo err >&2; exit 3"},
			wantCode: 3, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "success", cmd: model.Command{Line: "printf ok"}, wantStdout: "ok"},
		{name: "env and dir", cmd: model.Command{Line: `printf '%s %s' "$FELIX_T" "$(pwd)"`, Env: []string{"FELIX_T=v"}, Dir: "/"},
			wantStdout: "v /"},
		{name: "killed at the timeout", cmd: model.Command{Line: "sleep 30", Timeout: 300 * time.Millisecond},
			wantCode: -1, wantSignal: "SIGTERM", wantTimed: true},
		{name: "killed by a signal", cmd: model.Command{Line: "kill -KILL $$"}, wantCode: -1, wantSignal: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out output
			exit, err := h.pool.Exec(testCtx(t), h.target, tt.cmd, out.add)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if exit.Code != tt.wantCode || exit.TimedOut != tt.wantTimed || exit.Signal != tt.wantSignal {
				t.Errorf("exit = %+v; want code %d, signal %q, timed out %v", exit, tt.wantCode, tt.wantSignal, tt.wantTimed)
			}
			stdout, stderr := out.strings()
			if stdout != tt.wantStdout || stderr != tt.wantStderr {
				t.Errorf("output = %q, %q; want %q, %q", stdout, stderr, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestPingAndFacts(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	v, err := h.pool.Ping(ctx, h.target)
	if err != nil || v != "test" {
		t.Errorf("Ping = %q, %v; want test, nil", v, err)
	}
	f, err := h.pool.Facts(ctx, h.target)
	if err != nil {
		t.Fatalf("Facts: %v", err)
	}
	host, _ := os.Hostname()
	if f.Hostname != host {
		t.Errorf("Facts hostname = %q; want %q", f.Hostname, host)
	}
	if f.CPUs < 1 {
		t.Errorf("Facts CPUs = %d; want >= 1", f.CPUs)
	}
}

func TestEngineOverAgent(t *testing.T) {
	h := newHarness(t)
	e := &exec.Engine{Transport: h.pool, Limit: 2}
	bad := h.target
	bad.ID, bad.Fingerprint = "m1-wrong-pin", h.evil.Fingerprint
	targets := []model.Target{h.target, bad}
	res := e.Run(testCtx(t), model.Command{Line: "echo hi; exit 2"}, targets, exec.Options{}, exec.Hooks{})
	if res[0].State != model.StateFailed || res[0].ExitCode != 2 || string(res[0].Stdout) != "hi\n" || res[0].Transport != Name {
		t.Errorf("m1: %+v; want failed, exit 2, stdout hi, transport agent", res[0])
	}
	if res[1].State != model.StateUnreachable {
		t.Errorf("m1-wrong-pin: state %s (%s); want unreachable", res[1].State, res[1].Error)
	}
}

// TestRefused checks that every party but the pinned master and minion is
// refused before anything runs.
func TestRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness) (*Pool, model.Target)
	}{
		{
			name: "client is not the master",
			setup: func(h *harness) (*Pool, model.Target) {
				return NewPool(h.evil), h.target
			},
		},
		{
			name: "client presents no certificate",
			setup: func(h *harness) (*Pool, model.Target) {
				return NewPool(nil), h.target
			},
		},
		{
			name: "client pins another minion",
			setup: func(h *harness) (*Pool, model.Target) {
				tg := h.target
				tg.Fingerprint = h.evil.Fingerprint
				return NewPool(h.master), tg
			},
		},
		{
			name: "client pins its own certificate",
			setup: func(h *harness) (*Pool, model.Target) {
				// The master pins itself: the minion presents another certificate.
				tg := h.target
				tg.Fingerprint = h.master.Fingerprint
				return NewPool(h.master), tg
			},
		},
		{
			name: "minion pins nothing",
			setup: func(h *harness) (*Pool, model.Target) {
				h.serverPin.Store("")
				return NewPool(h.master), h.target
			},
		},
		{
			name: "minion pins another master",
			setup: func(h *harness) (*Pool, model.Target) {
				h.serverPin.Store(h.evil.Fingerprint)
				return NewPool(h.master), h.target
			},
		},
		{
			name: "target has no pin",
			setup: func(h *harness) (*Pool, model.Target) {
				tg := h.target
				tg.Fingerprint = ""
				return NewPool(h.master), tg
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			pool, tg := tt.setup(h)
			t.Cleanup(func() { pool.Close() })
			ctx := testCtx(t)
			marker := filepath.Join(t.TempDir(), "ran")

			exit, err := pool.Exec(ctx, tg, model.Command{Line: "touch " + marker}, func(model.Stream, []byte) {
				t.Errorf("output arrived from a refused connection")
			})
			if err == nil {
				t.Fatalf("Exec = %+v, nil; want an error", exit)
			}
			if !errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Exec error = %v; want it to wrap exec.ErrUnreachable", err)
			}
			t.Logf("refused: %v", err)
			if _, err := pool.Ping(ctx, tg); !errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Ping error = %v; want it to wrap exec.ErrUnreachable", err)
			}
			if _, err := pool.Facts(ctx, tg); !errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Facts error = %v; want it to wrap exec.ErrUnreachable", err)
			}

			// The legitimate master still gets through (the pin is restored),
			// and once it has, a command from the refused client would have
			// run long ago if it ever could.
			h.serverPin.Store(h.master.Fingerprint)
			if _, err := h.pool.Exec(ctx, h.target, model.Command{Line: "true"}, func(model.Stream, []byte) {}); err != nil {
				t.Fatalf("master's Exec after the refusal: %v", err)
			}
			h.stop() // waits for every handler
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused command ran: stat %s = %v", marker, err)
			}
		})
	}
}

// TestRawTLSWithoutClientCert speaks TLS to the minion without a client
// certificate. In TLS 1.3 the client's handshake may complete before the
// server has checked it; the refusal then surfaces on the first read.
func TestRawTLSWithoutClientCert(t *testing.T) {
	h := newHarness(t)
	d := &net.Dialer{Timeout: time.Minute}
	conn, err := tls.DialWithDialer(d, "tcp", h.target.Addr, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // we are the attacker: we trust anything
		NextProtos:         []string{"h2"},
	})
	if err != nil {
		t.Logf("handshake refused: %v", err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	// The HTTP/2 client preface and an empty SETTINGS frame.
	conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	n, err := conn.Read(make([]byte, 1024))
	if err == nil {
		t.Fatalf("read %d bytes from the minion without a client certificate; want an error", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("first read timed out; want the minion to refuse the connection")
	}
	t.Logf("first read refused: %v", err)
}

func TestConnectionReuse(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	for i := range 3 {
		if _, err := h.pool.Exec(ctx, h.target, model.Command{Line: "true"}, func(model.Stream, []byte) {}); err != nil {
			t.Fatalf("Exec %d: %v", i, err)
		}
	}
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if n := h.ln.accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections for 3 Execs and a Ping; want 1", n)
	}
	h.pool.mu.Lock()
	n := len(h.pool.conns)
	h.pool.mu.Unlock()
	if n != 1 {
		t.Errorf("pool holds %d connections; want 1", n)
	}

	// A changed pin is a new connection, not a reuse of the old one.
	other := h.target
	other.Fingerprint = h.evil.Fingerprint
	if _, err := h.pool.Ping(ctx, other); !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("Ping with a changed pin = %v; want unreachable", err)
	}
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Errorf("Ping with the pin restored: %v", err)
	}

	h.pool.Forget("m1")
	h.pool.mu.Lock()
	n = len(h.pool.conns)
	h.pool.mu.Unlock()
	if n != 0 {
		t.Errorf("pool holds %d connections after Forget; want 0", n)
	}
}

func TestStoppedServer(t *testing.T) {
	tests := []struct {
		name       string
		warm       bool // connect before the server stops
		stopByHand func(h *harness)
		// ambiguous: the client may not have seen the connection close
		// before it sent the request; then it cannot claim nothing ran.
		ambiguous bool
	}{
		{name: "graceful stop, warm connection", warm: true, stopByHand: (*harness).stop},
		{name: "graceful stop, cold pool", stopByHand: (*harness).stop},
		{name: "hard stop, warm connection", warm: true, stopByHand: func(h *harness) { h.grpc.Stop() }, ambiguous: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			ctx := testCtx(t)
			if tt.warm {
				if _, err := h.pool.Ping(ctx, h.target); err != nil {
					t.Fatalf("Ping before stop: %v", err)
				}
			}
			tt.stopByHand(h)
			marker := filepath.Join(t.TempDir(), "ran")
			_, err := h.pool.Exec(ctx, h.target, model.Command{Line: "touch " + marker}, func(model.Stream, []byte) {})
			switch {
			case err == nil:
				t.Errorf("Exec on a stopped minion succeeded")
			case errors.Is(err, exec.ErrUnreachable):
			case tt.ambiguous && strings.Contains(err.Error(), "may or may not have run"):
			default:
				t.Errorf("Exec on a stopped minion = %v; want it to wrap exec.ErrUnreachable", err)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("command ran on a stopped minion: stat = %v", err)
			}
		})
	}
}

func TestJobID(t *testing.T) {
	if _, ok := JobID(context.Background()); ok {
		t.Errorf("JobID(background) ok; want none")
	}
	if id, ok := JobID(WithJobID(context.Background(), "j1")); !ok || id != "j1" {
		t.Errorf("JobID = %q, %v; want j1, true", id, ok)
	}
}

// genReader yields n deterministic pseudo-random bytes made on the fly, so
// a large file never exists in memory; after failAfter bytes (if positive)
// it fails instead.
type genReader struct {
	rng       *rand.ChaCha8
	left      int64
	read      int64
	failAfter int64
	closed    atomic.Bool
}

var errDiskOnFire = errors.New("disk on fire")

func newGenReader(seed byte, n int64) *genReader {
	return &genReader{rng: rand.NewChaCha8([32]byte{seed}), left: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.failAfter > 0 && g.read >= g.failAfter {
		return 0, errDiskOnFire
	}
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.rng.Read(p)
	g.left -= int64(n)
	g.read += int64(n)
	return n, nil
}

func (g *genReader) Close() error {
	g.closed.Store(true)
	return nil
}

// bytesFile is an model.File of fixed content.
func bytesFile(name string, b []byte) *model.File {
	return &model.File{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// jobDirs lists what the server left in its temporary directory.
func jobDirs(t *testing.T, h *harness) []string {
	t.Helper()
	ents, err := os.ReadDir(h.tempDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestExecFileScript(t *testing.T) {
	h := newHarness(t)
	pwdFile := filepath.Join(t.TempDir(), "pwd")
	script := "#!/bin/sh\nprintf '[%s]' \"$@\"\npwd > " + pwdFile + "\nstat -c %a . \"$0\" >&2\n"
	cmd := model.Command{Line: "./deploy.sh 'arg one' two", Dir: "/", File: bytesFile("deploy.sh", []byte(script))}
	var out output
	exit, err := h.pool.Exec(testCtx(t), h.target, cmd, out.add)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	stdout, stderr := out.strings()
	if exit.Code != 0 || stdout != "[arg one][two]" || stderr != "700\n700\n" {
		t.Errorf("exit %d, output %q, %q; want 0, %q, %q", exit.Code, stdout, stderr, "[arg one][two]", "700\n700\n")
	}
	b, err := os.ReadFile(pwdFile)
	if err != nil {
		t.Fatalf("the script recorded no working directory: %v", err)
	}
	dir := strings.TrimSpace(string(b))
	if filepath.Dir(dir) != h.tempDir || !strings.HasPrefix(filepath.Base(dir), "felix-job-") {
		t.Errorf("working directory = %q; want a felix-job-* directory in %s", dir, h.tempDir)
	}
	// The directory is removed before the exit status is sent.
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("working directory left behind: stat %s = %v", dir, err)
	}
	if d := jobDirs(t, h); len(d) != 0 {
		t.Errorf("left in the server's temporary directory: %q", d)
	}
}

func TestExecFileContent(t *testing.T) {
	h := newHarness(t)
	blob := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(blob)
	const large = 20 << 20
	sum := sha256.New()
	if _, err := io.Copy(sum, newGenReader(2, large)); err != nil {
		t.Fatal(err)
	}
	var gens []*genReader
	genFile := &model.File{Name: "large.bin", Size: large, Open: func() (io.ReadCloser, error) {
		g := newGenReader(2, large)
		gens = append(gens, g)
		return g, nil
	}}
	tests := []struct {
		name string
		cmd  model.Command
		want string
	}{
		{name: "binary", cmd: model.Command{Line: "sha256sum ./blob", File: bytesFile("blob", blob)},
			want: fmt.Sprintf("%x  ./blob\n", sha256.Sum256(blob))},
		{name: "large, generated", cmd: model.Command{Line: "sha256sum large.bin", File: genFile},
			want: fmt.Sprintf("%x  large.bin\n", sum.Sum(nil))},
		{name: "empty", cmd: model.Command{Line: "wc -c < empty", File: bytesFile("empty", nil)}, want: "0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out output
			exit, err := h.pool.Exec(testCtx(t), h.target, tt.cmd, out.add)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			stdout, stderr := out.strings()
			if exit.Code != 0 || stdout != tt.want {
				t.Errorf("exit %d, output %q, %q; want 0, %q", exit.Code, stdout, stderr, tt.want)
			}
		})
	}
	if len(gens) != 1 || !gens[0].closed.Load() {
		t.Errorf("the generated file was opened %d times, closed: %v; want once and closed", len(gens), len(gens) > 0 && gens[0].closed.Load())
	}
	if d := jobDirs(t, h); len(d) != 0 {
		t.Errorf("left in the server's temporary directory: %q", d)
	}
}

// TestExecFileNotRun checks that nothing runs and nothing is left behind
// when the content cannot be delivered whole or the minion refuses it.
func TestExecFileNotRun(t *testing.T) {
	const size = 4 << 20
	failing := func() (io.ReadCloser, error) {
		g := newGenReader(3, size)
		g.failAfter = 1 << 20
		return g, nil
	}
	content := func() (io.ReadCloser, error) { return newGenReader(3, size), nil }
	tests := []struct {
		name    string
		file    model.File
		maxSize int64
		wantErr string
	}{
		{name: "reader fails midway", file: model.File{Name: "f", Size: size, Open: failing}, wantErr: errDiskOnFire.Error()},
		{name: "content shorter than its size", file: model.File{Name: "f", Size: size + 1, Open: content}, wantErr: "not its size"},
		{name: "content longer than its size", file: model.File{Name: "f", Size: size - 1, Open: content}, wantErr: "longer than its size"},
		{name: "open fails", file: model.File{Name: "f", Size: size, Open: func() (io.ReadCloser, error) { return nil, errDiskOnFire }},
			wantErr: errDiskOnFire.Error()},
		{name: "over the size limit", file: model.File{Name: "f", Size: size, Open: content}, maxSize: size - 1, wantErr: "limit"},
		{name: "name with ..", file: model.File{Name: "../x", Size: size, Open: content}, wantErr: "not a plain base name"},
		{name: "name with /", file: model.File{Name: "a/b", Size: size, Open: content}, wantErr: "not a plain base name"},
		{name: "empty name", file: model.File{Name: "", Size: size, Open: content}, wantErr: "empty file name"},
		{name: "name ..", file: model.File{Name: "..", Size: size, Open: content}, wantErr: "is a directory"},
		{name: "name with NUL", file: model.File{Name: "a\x00b", Size: size, Open: content}, wantErr: "not a plain base name"},
		{name: "name too long", file: model.File{Name: strings.Repeat("a", 256), Size: size, Open: content}, wantErr: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(s *Server) { s.MaxFileSize = tt.maxSize })
			marker := filepath.Join(t.TempDir(), "ran")
			f := tt.file
			exit, err := h.pool.Exec(testCtx(t), h.target, model.Command{Line: "touch " + marker, File: &f}, func(model.Stream, []byte) {
				t.Errorf("output arrived from a command that should not run")
			})
			if err == nil {
				t.Fatalf("Exec = %+v, nil; want an error", exit)
			}
			if errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Exec error = %v; want one mentioning %q, not unreachable", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			h.stop() // waits for every handler
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command ran: stat %s = %v", marker, err)
			}
			if d := jobDirs(t, h); len(d) != 0 {
				t.Errorf("left in the server's temporary directory: %q", d)
			}
		})
	}
}

// TestExecFileProtocol speaks ExecFile directly to check that the minion
// itself enforces the protocol, whatever the client does.
func TestExecFileProtocol(t *testing.T) {
	header := func(name string, size int64, line string) *felixv1.ExecFileRequest {
		return &felixv1.ExecFileRequest{Msg: &felixv1.ExecFileRequest_Header{Header: &felixv1.ExecFileHeader{
			Exec: &felixv1.ExecRequest{JobId: "j1", CmdLine: line}, FileName: name, Size: size}}}
	}
	data := func(b string) *felixv1.ExecFileRequest {
		return &felixv1.ExecFileRequest{Msg: &felixv1.ExecFileRequest_Data{Data: []byte(b)}}
	}
	tests := []struct {
		name string
		msgs func(line string) []*felixv1.ExecFileRequest
		want codes.Code
	}{
		{name: "no header", want: codes.InvalidArgument,
			msgs: func(string) []*felixv1.ExecFileRequest { return []*felixv1.ExecFileRequest{data("abc")} }},
		{name: "header without command", want: codes.InvalidArgument,
			msgs: func(string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{{Msg: &felixv1.ExecFileRequest_Header{Header: &felixv1.ExecFileHeader{FileName: "f"}}}}
			}},
		{name: "bad name", want: codes.InvalidArgument,
			msgs: func(l string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{header("../f", 3, l), data("abc")}
			}},
		{name: "negative size", want: codes.InvalidArgument,
			msgs: func(l string) []*felixv1.ExecFileRequest { return []*felixv1.ExecFileRequest{header("f", -1, l)} }},
		{name: "over the limit", want: codes.ResourceExhausted,
			msgs: func(l string) []*felixv1.ExecFileRequest { return []*felixv1.ExecFileRequest{header("f", 1025, l)} }},
		{name: "short", want: codes.InvalidArgument,
			msgs: func(l string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{header("f", 4, l), data("ab"), data("c")}
			}},
		{name: "long", want: codes.InvalidArgument,
			msgs: func(l string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{header("f", 2, l), data("ab"), data("c")}
			}},
		{name: "second header", want: codes.InvalidArgument,
			msgs: func(l string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{header("f", 3, l), data("ab"), header("f", 3, l), data("c")}
			}},
		{name: "complete", want: codes.OK,
			msgs: func(l string) []*felixv1.ExecFileRequest {
				return []*felixv1.ExecFileRequest{header("f", 3, l), data("ab"), data("c")}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(s *Server) { s.MaxFileSize = 1024 })
			marker := filepath.Join(t.TempDir(), "ran")
			sendRaw(t, h, func(ctx context.Context, cl felixv1.MinionClient) (rawStream[*felixv1.ExecFileRequest], error) {
				return cl.ExecFile(ctx)
			}, tt.msgs("test \"$(cat f)\" = abc && touch "+marker), true, marker, tt.want)
			if d := jobDirs(t, h); len(d) != 0 {
				t.Errorf("left in the server's temporary directory: %q", d)
			}
		})
	}
}

// rawStream is the master's side of an ExecFile or ExecFlow stream.
type rawStream[M any] interface {
	Send(M) error
	CloseSend() error
	Recv() (*felixv1.ExecEvent, error)
}

// sendRaw opens a stream to h's minion with open, sends msgs (a command
// that creates marker) and, with closeSend, closes its side; then checks
// that the stream
// ends with want (OK: an exit status), and, once the server stopped,
// that the command ran if and only if want is OK.
func sendRaw[M any](t *testing.T, h *harness, open func(context.Context, felixv1.MinionClient) (rawStream[M], error), msgs []M, closeSend bool, marker string, want codes.Code) {
	t.Helper()
	ctx := testCtx(t)
	cl, release, err := h.pool.client(ctx, h.target)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	stream, err := open(ctx, cl)
	if err != nil {
		t.Fatalf("open the stream: %v", err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the minion gave up; Recv says why
		}
	}
	if closeSend {
		stream.CloseSend()
	}
	code := codes.OK
	for {
		ev, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				code = status.Code(err)
			}
			t.Logf("stream ended: %v", err)
			break
		}
		if ev.GetExit() != nil {
			break
		}
	}
	if code != want {
		t.Errorf("status = %v; want %v", code, want)
	}
	h.stop()
	_, err = os.Stat(marker)
	if ran := err == nil; ran != (want == codes.OK) {
		t.Errorf("command ran: %v; want %v", ran, want == codes.OK)
	}
}

// An injected Runner replaces local.Run for Exec and ExecFile alike: it gets
// the command (in its private directory for ExecFile) and no shell runs.
func TestInjectedRunner(t *testing.T) {
	var mu sync.Mutex
	var got []model.Command
	h := newHarness(t, func(s *Server) {
		s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
			mu.Lock()
			got = append(got, cmd)
			mu.Unlock()
			out(model.Stdout, []byte("runner"))
			return model.Exit{Code: 4}, nil
		}
	})
	marker := filepath.Join(t.TempDir(), "ran")
	cmds := []model.Command{
		{Line: "touch " + marker, Dir: "/"},
		{Line: "./s.sh", File: bytesFile("s.sh", []byte("#!/bin/sh\ntouch "+marker+"\n"))},
	}
	for _, cmd := range cmds {
		var out output
		exit, err := h.pool.Exec(testCtx(t), h.target, cmd, out.add)
		if err != nil {
			t.Fatalf("Exec %q: %v", cmd.Line, err)
		}
		if stdout, _ := out.strings(); exit.Code != 4 || stdout != "runner" {
			t.Errorf("Exec %q = exit %d, stdout %q; want the runner's 4 and %q", cmd.Line, exit.Code, stdout, "runner")
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("a shell ran although a runner was injected")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Line != cmds[0].Line || got[0].Dir != "/" ||
		got[1].Line != "./s.sh" || filepath.Dir(got[1].Dir) != h.tempDir {
		t.Errorf("the runner got %+v; want both commands, the second in a job directory of %s", got, h.tempDir)
	}
}

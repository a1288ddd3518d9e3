package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/pki"
)

// testLogWriter routes a logger to t.Log until the test ends; afterwards
// (a handler still finishing) lines are dropped instead of panicking.
type testLogWriter struct {
	t    *testing.T
	mu   sync.Mutex // protects done
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

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

func identities(t *testing.T) (master, minion, evil *pki.Identity) {
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
	pool                 *Pool       // presents the master identity
	target               exec.Target // the minion, pinned correctly
	serverPin            atomic.Value
	served               chan error
	stopOnce             sync.Once
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{served: make(chan error, 1)}
	h.master, h.minion, h.evil = identities(t)
	h.serverPin.Store(h.master.Fingerprint)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.ln = &countingListener{Listener: ln}
	h.grpc = NewGRPCServer(h.minion, func() string { return h.serverPin.Load().(string) },
		NewServer("m1", "test", testLogger(t)))
	go func() { h.served <- h.grpc.Serve(h.ln) }()
	t.Cleanup(h.stop)
	h.pool = NewPool(h.master)
	t.Cleanup(func() { h.pool.Close() })
	h.target = exec.Target{ID: "m1", Addr: ln.Addr().String(), Fingerprint: h.minion.Fingerprint}
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

func (o *output) add(s exec.Stream, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s == exec.Stderr {
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
		cmd        exec.Command
		wantCode   int
		wantStdout string
		wantStderr string
		wantSignal string
		wantTimed  bool
	}{
		{name: "streams and exit code", cmd: exec.Command{Line: "echo out; echo err >&2; exit 3"},
			wantCode: 3, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "success", cmd: exec.Command{Line: "printf ok"}, wantStdout: "ok"},
		{name: "env and dir", cmd: exec.Command{Line: `printf '%s %s' "$FELIX_T" "$(pwd)"`, Env: []string{"FELIX_T=v"}, Dir: "/"},
			wantStdout: "v /"},
		{name: "killed at the timeout", cmd: exec.Command{Line: "sleep 30", Timeout: 300 * time.Millisecond},
			wantCode: -1, wantSignal: "SIGTERM", wantTimed: true},
		{name: "killed by a signal", cmd: exec.Command{Line: "kill -KILL $$"}, wantCode: -1, wantSignal: "SIGKILL"},
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
	targets := []exec.Target{h.target, bad}
	res := e.Run(testCtx(t), exec.Command{Line: "echo hi; exit 2"}, targets, nil)
	if res[0].State != exec.StateFailed || res[0].ExitCode != 2 || string(res[0].Stdout) != "hi\n" || res[0].Transport != Name {
		t.Errorf("m1: %+v; want failed, exit 2, stdout hi, transport agent", res[0])
	}
	if res[1].State != exec.StateUnreachable {
		t.Errorf("m1-wrong-pin: state %s (%s); want unreachable", res[1].State, res[1].Error)
	}
}

// TestRefused checks that every party but the pinned master and minion is
// refused before anything runs.
func TestRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness) (*Pool, exec.Target)
	}{
		{
			name: "client is not the master",
			setup: func(h *harness) (*Pool, exec.Target) {
				return NewPool(h.evil), h.target
			},
		},
		{
			name: "client presents no certificate",
			setup: func(h *harness) (*Pool, exec.Target) {
				return NewPool(nil), h.target
			},
		},
		{
			name: "client pins another minion",
			setup: func(h *harness) (*Pool, exec.Target) {
				tg := h.target
				tg.Fingerprint = h.evil.Fingerprint
				return NewPool(h.master), tg
			},
		},
		{
			name: "client pins its own certificate",
			setup: func(h *harness) (*Pool, exec.Target) {
				// The master pins itself: the minion presents another certificate.
				tg := h.target
				tg.Fingerprint = h.master.Fingerprint
				return NewPool(h.master), tg
			},
		},
		{
			name: "minion pins nothing",
			setup: func(h *harness) (*Pool, exec.Target) {
				h.serverPin.Store("")
				return NewPool(h.master), h.target
			},
		},
		{
			name: "minion pins another master",
			setup: func(h *harness) (*Pool, exec.Target) {
				h.serverPin.Store(h.evil.Fingerprint)
				return NewPool(h.master), h.target
			},
		},
		{
			name: "target has no pin",
			setup: func(h *harness) (*Pool, exec.Target) {
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

			exit, err := pool.Exec(ctx, tg, exec.Command{Line: "touch " + marker}, func(exec.Stream, []byte) {
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
			if _, err := h.pool.Exec(ctx, h.target, exec.Command{Line: "true"}, func(exec.Stream, []byte) {}); err != nil {
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
		if _, err := h.pool.Exec(ctx, h.target, exec.Command{Line: "true"}, func(exec.Stream, []byte) {}); err != nil {
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
			_, err := h.pool.Exec(ctx, h.target, exec.Command{Line: "touch " + marker}, func(exec.Stream, []byte) {})
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

package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/felix-ops/felix/model"
	"golang.org/x/crypto/ssh"
)

// killGrace is how long a process group has between SIGTERM and SIGKILL.
// waitDelay bounds how long a command's output is waited for after its
// shell exited (a background child may hold the streams open). Variables
// so tests can shorten them.
var (
	killGrace = 2 * time.Second
	waitDelay = 2 * time.Second
)

// errDeadline is the cause of a run's context when its timeout fires.
var errDeadline = errors.New("command deadline exceeded")

// errSessionLimit marks a kill's session refused because the connection is
// full; the kill then goes over a connection of its own.
var errSessionLimit = errors.New("session limit reached")

// session is one channel ("session") on a pooled connection. It holds a
// session slot of the connection until the channel is closed on both sides.
type session struct {
	ch     ssh.Channel
	conn   *conn         // the connection it is on
	done   chan struct{} // closed when the channel is gone and its slot released
	exited chan struct{} // closed when the exit status arrived
	code   int           // exit status, -1 for a signal; valid once exited is closed
	signal string        // e.g. "SIGTERM"; valid once exited is closed
}

// serve answers the channel's requests, records the exit status and, when
// the channel is closed, releases the slot.
func (ss *session) serve(reqs <-chan *ssh.Request, release func()) {
	defer close(ss.done)
	defer release()
	got := false
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			var m struct{ Status uint32 }
			if !got && ssh.Unmarshal(r.Payload, &m) == nil {
				ss.code, got = int(m.Status), true
				close(ss.exited)
			}
		case "exit-signal":
			var m struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if !got && ssh.Unmarshal(r.Payload, &m) == nil {
				ss.code, ss.signal, got = -1, "SIG"+m.Signal, true
				close(ss.exited)
			}
		}
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
}

// hasExited reports whether the exit status arrived.
func (ss *session) hasExited() bool {
	select {
	case <-ss.exited:
		return true
	default:
		return false
	}
}

// errRefused marks a request the server answered with a refusal: it did
// not run anything.
var errRefused = errors.New("refused by the server")

// errUnanswered marks a request the server never answered: it closed the
// channel without a reply, an exit status or any output while the
// connection stayed up, so it ran nothing. Dropbear 2022.83 does this now
// and then to a session opened right after another one closed.
var errUnanswered = errors.New("the server closed the session without answering the request")

// start asks the server to run command (given to the login shell). An
// error wrapping errRefused or errUnanswered means the server ran nothing;
// any other error leaves it unknown (the connection failed after the
// request went out).
func (ss *session) start(command string) error {
	return ss.request("exec", ssh.Marshal(struct{ Command string }{command}))
}

// subsystem asks the server to start a subsystem (sftp); errors as start's.
func (ss *session) subsystem(name string) error {
	return ss.request("subsystem", ssh.Marshal(struct{ Name string }{name}))
}

// request sends an exec or subsystem request and classifies a failure.
func (ss *session) request(kind string, payload []byte) error {
	ok, err := ss.ch.SendRequest(kind, true, payload)
	switch {
	case err == nil && ok:
		return nil
	case err == nil:
		return fmt.Errorf("%s request: %w", kind, errRefused)
	}
	// The channel closed before the reply (io.EOF), or the connection
	// broke. Both OpenSSH and Dropbear reply to an exec request before
	// they start reading what the command does, and a command that ran
	// leaves an exit status before the close.
	select {
	case <-ss.done:
	case <-time.After(ss.conn.spec.set.ConnectTimeout):
	}
	closed := ss.closed()
	exited := ss.hasExited()
	output := closed && ss.hadOutput() // an open channel's Read would block
	alive := closed && !exited && !output && ss.connAlive()
	return classifyStart(kind, err, closed, exited, output, alive)
}

// classifyStart decides what a request that got no reply means: only a
// channel that is gone with nothing from a command (no exit status, no
// output) on a connection that still answers was never acted on.
func classifyStart(kind string, err error, closed, exited, output, alive bool) error {
	if closed && !exited && !output && alive {
		return fmt.Errorf("%s request: %w (%w)", kind, errUnanswered, err)
	}
	return fmt.Errorf("%s request: %w", kind, err)
}

// closed reports whether the channel is gone (its requests ended).
func (ss *session) closed() bool {
	select {
	case <-ss.done:
		return true
	default:
		return false
	}
}

// hadOutput reports whether the closed channel carried any output; it
// consumes what there is (the session is not used afterwards).
func (ss *session) hadOutput() bool {
	var b [1]byte
	if n, _ := ss.ch.Read(b[:]); n > 0 {
		return true
	}
	n, _ := ss.ch.Stderr().Read(b[:])
	return n > 0
}

// connAlive reports whether the session's connection still answers a
// global request.
func (ss *session) connAlive() bool {
	res := make(chan error, 1)
	go func() {
		_, _, err := ss.conn.client.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	select {
	case err := <-res:
		return err == nil
	case <-time.After(ss.conn.spec.set.ConnectTimeout):
		return false
	}
}

// startAttempts bounds the sessions opened for one request the server
// never answered (errUnanswered); startBackoff is the first pause between
// them, doubled each time. Variables so tests can change them.
var (
	startAttempts = 4
	startBackoff  = 20 * time.Millisecond
)

// retryStart reports whether a request that failed with err on attempt
// (1, 2, ...) is tried again on a new session: only one the server
// surely did not act on, refused (an exec request; a refused subsystem
// is the server's answer) or unanswered, and only startAttempts times.
func retryStart(kind string, err error, attempt int) bool {
	if attempt >= startAttempts {
		return false
	}
	return errors.Is(err, errUnanswered) || kind == "exec" && errors.Is(err, errRefused)
}

// startSession opens a session on s's connection and sends the request
// (kind "exec" with command, or "subsystem" with the subsystem's name),
// opening a new session after a refused or unanswered exec request (see
// retryStart). The error wraps exec.ErrUnreachable when the server surely
// ran nothing, errRefused or errUnanswered saying why; otherwise the
// command may have run, and the error says so.
func (p *Pool) startSession(ctx context.Context, s hostSpec, bypass bool, kind, arg string) (*session, error) {
	backoff := startBackoff
	for attempt := 1; ; attempt++ {
		ss, err := p.openSession(ctx, s, bypass)
		if err != nil {
			return nil, err
		}
		if kind == "subsystem" {
			err = ss.subsystem(arg)
		} else {
			err = ss.start(arg)
		}
		if err == nil {
			return ss, nil
		}
		ss.ch.Close()
		if !retryStart(kind, err, attempt) {
			return nil, startError(s, kind, attempt, err)
		}
		p.log.Debug("ssh request not acted on; retrying on a new session", "host", s.addr, "request", kind, "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("start a command on %s: %w (after: %w; the command did not run)", s, ctx.Err(), err)
		}
		backoff *= 2
	}
}

// startError turns a failed start into exec's terms: unreachable only when
// the server surely ran nothing.
func startError(s hostSpec, kind string, attempts int, err error) error {
	what := "start a command on"
	if kind == "subsystem" {
		what = "start a subsystem on"
	}
	tries := ""
	if attempts > 1 {
		tries = fmt.Sprintf(" (%d sessions tried)", attempts)
	}
	if errors.Is(err, errRefused) || errors.Is(err, errUnanswered) {
		return unreachable(s, what, fmt.Errorf("%w%s; the command did not run", err, tries))
	}
	return fmt.Errorf("%s %s: %w (the connection failed after the request was sent: the command may have run)", what, s, err)
}

// openSession opens a session on s's connection, waiting for a free slot.
// A connection that turns out dead is dropped and redialled once. Errors
// wrap exec.ErrUnreachable (nothing ran), or ctx's error.
func (p *Pool) openSession(ctx context.Context, s hostSpec, bypass bool) (*session, error) {
	redialled := false
	for {
		c, err := p.acquire(ctx, s, bypass)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			p.release(c)
			return nil, fmt.Errorf("open a session on %s: %w", s, err)
		}
		ch, reqs, err := p.openChannel(c)
		if err == nil {
			ss := &session{ch: ch, conn: c, done: make(chan struct{}), exited: make(chan struct{})}
			go ss.serve(reqs, func() { p.releaseSession(c) })
			return ss, nil
		}
		others := p.release(c)
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			if oce.Reason != ssh.UnknownChannelType && others > 0 {
				// The server allows fewer sessions than we thought
				// (OpenSSH says "open failed", as "administratively
				// prohibited" or "connect failed" by version).
				if bypass {
					return nil, fmt.Errorf("open a session on %s: %w: %w", s, err, errSessionLimit)
				}
				p.lowerLimit(c, others)
				continue
			}
			return nil, unreachable(s, "open a session on", err)
		}
		p.drop(c)
		if redialled || ctx.Err() != nil {
			return nil, unreachable(s, "open a session on", err)
		}
		redialled = true
		p.log.Debug("ssh connection lost, redialling", "host", s.addr, "err", err)
	}
}

// openChannel opens a session channel on c. A connection that does not
// answer within ConnectTimeout (its host is gone) is dropped.
func (p *Pool) openChannel(c *conn) (ssh.Channel, <-chan *ssh.Request, error) {
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	res := make(chan result, 1)
	go func() {
		ch, reqs, err := c.client.OpenChannel("session", nil)
		res <- result{ch, reqs, err}
	}()
	timer := time.NewTimer(p.conf().ConnectTimeout)
	defer timer.Stop()
	select {
	case r := <-res:
		return r.ch, r.reqs, r.err
	case <-timer.C:
		p.drop(c) // closing it ends OpenChannel
		if r := <-res; r.err == nil {
			r.ch.Close()
			go ssh.DiscardRequests(r.reqs)
		}
		return nil, nil, fmt.Errorf("no answer to a session request within %s; connection dropped", p.conf().ConnectTimeout)
	}
}

// releaseSession gives back the slot of a session whose channel closed.
// On a full connection a waiter would open the next session at once, and
// OpenSSH may not have freed the closed one yet: a global request's round
// trip first orders our close before that open.
func (p *Pool) releaseSession(c *conn) {
	p.mu.Lock()
	full := c.active >= c.limit && !c.dead
	client := c.client
	p.mu.Unlock()
	if full && client != nil {
		_, _, _ = client.SendRequest("keepalive@openssh.com", true, nil)
	}
	p.release(c)
}

// lowerLimit lowers c's session limit to n after the server refused more.
func (p *Pool) lowerLimit(c *conn, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < c.limit {
		p.log.Debug("ssh server allows fewer sessions", "host", c.spec.addr, "sessions", n)
		c.limit = max(n, 1)
	}
}

// runSpec is a command line to run through the wrapper.
type runSpec struct {
	line    string
	env     []string
	dir     string
	timeout time.Duration
}

// validate rejects what the wrapper cannot carry: NUL bytes (no shell
// variable holds one) and environment entries that are not NAME=VALUE.
func (r runSpec) validate() error {
	if strings.ContainsRune(r.line, 0) {
		return errors.New("the command line contains a NUL byte")
	}
	if strings.ContainsRune(r.dir, 0) {
		return fmt.Errorf("working directory %q contains a NUL byte", r.dir)
	}
	for _, e := range r.env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || !model.ValidEnvName(k) {
			return fmt.Errorf("environment entry %q: want NAME=VALUE with a shell variable name", e)
		}
		if strings.ContainsRune(e, 0) {
			return fmt.Errorf("environment entry %q contains a NUL byte", k)
		}
	}
	return nil
}

// wrapperScript is the fixed program felix runs for every command. It reads
// from standard input, one field a line: a token, the working directory,
// the number of environment entries, the entries, and the command line.
// A field is "r" and the value, or "e" and the value with backslashes and
// newlines escaped for printf %b. It changes directory, finds its process
// group (its own when sshd made it a session leader; else it becomes one
// with setsid, which then does not fork), reports "TOKEN pgid N" on
// standard error and execs env with the entries and /bin/sh -c with the
// command line — the entries reach only the command, so none can change the
// wrapper's own variables. A directory it cannot enter is reported as "TOKEN cd". Values are
// only ever expanded inside double quotes: none is code.
//
// It must not contain single quotes (it is single-quoted in the command
// sshd hands the login shell) and is one line, for any login shell.
const wrapperScript = `set -f; IFS= read -r t || exit 126; IFS= read -r d || exit 126; IFS= read -r n || exit 126; ` +
	`dec() { case $1 in e*) v=$(printf "%bx" "${1#?}"); v=${v%x};; *) v=${1#?};; esac; }; ` +
	`set --; while [ "$n" -gt 0 ]; do IFS= read -r e || exit 126; dec "$e"; set -- "$@" "$v"; n=$((n-1)); done; ` +
	`IFS= read -r c || exit 126; dec "$c"; c=$v; dec "$d"; d=$v; ` +
	`if [ -n "$d" ]; then case $d in /*) ;; *) d=./$d;; esac; cd "$d" 2>/dev/null || { printf "%s cd\n" "$t" >&2; exit 126; }; fi; ` +
	`g=$$; if IFS= read -r s 2>/dev/null </proc/$$/stat; then s=${s##*) }; s=${s#* }; s=${s#* }; g=${s%% *}; fi; ` +
	`x=; if [ "$g" != "$$" ] && x=$(command -v setsid); then g=$$; else x=; fi; ` +
	`printf "%s pgid %s\n" "$t" "$g" >&2; ` +
	`if [ -n "$x" ]; then exec "$x" env -- "$@" /bin/sh -c -- "$c" </dev/null; fi; exec env -- "$@" /bin/sh -c -- "$c" </dev/null`

// shellCommand is the command sshd gives the login shell to run script,
// which is fixed text, with /bin/sh under sudo, a hostSpec's sudo prefix
// ("" for none).
func shellCommand(script, sudo string) string {
	return "exec " + sudo + "/bin/sh -c '" + script + "'"
}

// plainCommand is a fixed command line under sudo, a hostSpec's sudo
// prefix ("" for none).
func plainCommand(cmd, sudo string) string {
	return "exec " + sudo + cmd
}

// payload is what the wrapper reads on its standard input.
func (r runSpec) payload(token string) []byte {
	var b bytes.Buffer
	b.WriteString(token + "\n")
	writeField(&b, r.dir)
	b.WriteString(strconv.Itoa(len(r.env)) + "\n")
	for _, e := range r.env {
		writeField(&b, e)
	}
	writeField(&b, r.line)
	return b.Bytes()
}

// fieldEscaper escapes a value for printf %b.
var fieldEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func writeField(b *bytes.Buffer, v string) {
	if !strings.Contains(v, "\n") {
		b.WriteString("r" + v + "\n")
		return
	}
	b.WriteString("e" + fieldEscaper.Replace(v) + "\n")
}

// newToken returns a random marker for the wrapper's status line.
func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "felix-" + hex.EncodeToString(b)
}

// run runs r through the wrapper on s, streaming output to out. At r's
// timeout or when ctx ends, the remote process group is killed.
func (p *Pool) run(ctx context.Context, s hostSpec, r runSpec, out model.OutputFunc) (model.Exit, error) {
	token := newToken()
	ss, err := p.startSession(ctx, s, false, "exec", shellCommand(wrapperScript, s.sudo()))
	if err != nil {
		return model.Exit{}, err
	}
	// From here on the command may have run: no error is "unreachable".
	start := time.Now()
	runCtx := ctx
	if r.timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, r.timeout, errDeadline)
		defer cancel()
	}

	// Output is gated so that nothing reaches out after run returns.
	var outMu sync.Mutex
	stopped := false
	emit := func(st model.Stream, b []byte) {
		outMu.Lock()
		defer outMu.Unlock()
		if !stopped && len(b) > 0 {
			out(st, b)
		}
	}
	go func() {
		_, _ = ss.ch.Write(r.payload(token))
		_ = ss.ch.CloseWrite()
	}()
	status := newStatusFilter(token, func(b []byte) { emit(model.Stderr, b) })
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		copyChunks(ss.ch, func(b []byte) { emit(model.Stdout, b) })
	}()
	go func() {
		defer readers.Done()
		copyChunks(ss.ch.Stderr(), status.write)
		status.flush()
	}()
	streams := make(chan struct{})
	go func() {
		readers.Wait()
		close(streams)
	}()

	var killCause error
	ctxDone := runCtx.Done()
	var force <-chan time.Time
wait:
	for {
		select {
		case <-ss.exited:
			// Let output in flight arrive; background children holding
			// the streams open are waited for only so long.
			select {
			case <-streams:
			case <-ss.done:
			case <-time.After(waitDelay):
			}
			break wait
		case <-ss.done:
			break wait
		case <-ctxDone:
			ctxDone = nil
			if ss.hasExited() {
				continue // finished just in time: the exit case follows
			}
			killCause = context.Cause(runCtx)
			p.startKill()
			go p.kill(s, status, ss.done)
			force = time.After(killGrace + waitDelay + p.conf().ConnectTimeout)
		case <-force:
			break wait
		}
	}
	ss.ch.Close()
	select {
	case <-streams:
	case <-time.After(waitDelay):
	}
	outMu.Lock()
	stopped = true
	outMu.Unlock()

	ex := model.Exit{Duration: time.Since(start), Code: -1}
	exited := ss.hasExited()
	if exited {
		ex.Code, ex.Signal = ss.code, ss.signal
	}
	if killCause != nil {
		if errors.Is(killCause, errDeadline) || errors.Is(killCause, context.DeadlineExceeded) {
			ex.TimedOut = true
		} else {
			ex.Cancelled = true
		}
		return ex, nil
	}
	if status.cdFailed() {
		return model.Exit{}, fmt.Errorf("exec on %s: cannot change to directory %q (the command did not run)", s.id, r.dir)
	}
	if !exited {
		return ex, fmt.Errorf("exec on %s: the session ended without an exit status (connection lost?); the command may have run", s.id)
	}
	return ex, nil
}

// copyChunks reads r to its end, handing each chunk to f.
func copyChunks(r io.Reader, f func([]byte)) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			f(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// statusFilter passes a command's standard error through, minus the
// wrapper's status line ("TOKEN pgid N" or "TOKEN cd"), which it parses.
// Lines before the status line (a login shell's noise) are passed on.
type statusFilter struct {
	prefix []byte
	out    func([]byte)

	// used by the reading goroutine only:
	pending []byte
	found   bool

	known chan struct{} // closed when the status line arrived (or never will)
	once  sync.Once
	pgid  string // valid once known is closed; "" if none was reported
	cd    bool   // valid once known is closed
}

func newStatusFilter(token string, out func([]byte)) *statusFilter {
	return &statusFilter{prefix: []byte(token + " "), out: out, known: make(chan struct{})}
}

// maxNoise bounds what is held back while looking for the status line.
const maxNoise = 64 << 10

func (f *statusFilter) write(b []byte) {
	if f.found {
		f.out(b)
		return
	}
	f.pending = append(f.pending, b...)
	for {
		i := bytes.IndexByte(f.pending, '\n')
		if i < 0 {
			if len(f.pending) > maxNoise {
				f.out(f.pending)
				f.pending = f.pending[:0]
			}
			return
		}
		line := f.pending[:i]
		if rest, ok := bytes.CutPrefix(line, f.prefix); ok {
			f.found = true
			f.parse(string(rest))
			if tail := f.pending[i+1:]; len(tail) > 0 {
				f.out(tail)
			}
			f.pending = nil
			return
		}
		f.out(f.pending[:i+1])
		f.pending = f.pending[i+1:]
	}
}

// flush passes on what is held back when the stream ends.
func (f *statusFilter) flush() {
	if len(f.pending) > 0 {
		f.out(f.pending)
		f.pending = nil
	}
	f.once.Do(func() { close(f.known) })
}

func (f *statusFilter) parse(s string) {
	f.once.Do(func() {
		switch {
		case s == "cd":
			f.cd = true
		case strings.HasPrefix(s, "pgid "):
			f.pgid = validPGID(strings.TrimPrefix(s, "pgid "))
		}
		close(f.known)
	})
}

// validPGID returns s if it is a process group id that may be signalled (a
// number above 1: "kill -- -1" would mean every process), else "".
func validPGID(s string) string {
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" {
		return ""
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 1 {
		return ""
	}
	return strconv.Itoa(n)
}

func (f *statusFilter) cdFailed() bool {
	select {
	case <-f.known:
		return f.cd
	default:
		return false
	}
}

// killScript signals process group pgid (digits, validated) with SIGTERM
// and, if any of it is left after the grace period, SIGKILL.
func killScript(pgid string, grace time.Duration) string {
	steps := max(int(grace/(100*time.Millisecond)), 1)
	return fmt.Sprintf(`g=%s; kill -s TERM -- -$g 2>/dev/null || exit 0; i=0; `+
		`while [ $i -lt %d ] && kill -s 0 -- -$g 2>/dev/null; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; `+
		`kill -s KILL -- -$g 2>/dev/null; exit 0`, pgid, steps)
}

// kill kills the process group the wrapper reported, from a new session.
func (p *Pool) kill(s hostSpec, status *statusFilter, sessionDone <-chan struct{}) {
	defer p.endKill()
	select {
	case <-status.known:
	case <-sessionDone:
		// Gone already; a status line read before the end still counts.
		select {
		case <-status.known:
		default:
			return
		}
	case <-time.After(p.conf().ConnectTimeout):
		p.log.Warn("ssh command did not report its process group; not killed", "host", s.addr)
		return
	}
	if status.pgid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.conf().ConnectTimeout+killGrace+10*time.Second)
	defer cancel()
	cmd := shellCommand(killScript(status.pgid, killGrace), s.sudo())
	_, _, _, err := p.runPlain(ctx, s, cmd, true)
	if errors.Is(err, errSessionLimit) {
		// The connection is full: kill over a connection of its own.
		var client *ssh.Client
		if client, err = p.connect(ctx, s); err == nil {
			defer client.Close()
			var sess *ssh.Session
			if sess, err = client.NewSession(); err == nil {
				err = sess.Run(cmd)
				sess.Close()
			}
		}
	}
	if err != nil {
		p.log.Warn("ssh kill at deadline failed", "host", s.addr, "pgid", status.pgid, "err", err)
	}
}

// maxPlainOutput bounds the output runPlain keeps per stream.
const maxPlainOutput = 1 << 20

// runPlain runs a fixed command (no wrapper) with no input and returns its
// output and exit status. When ctx ends the session is closed.
func (p *Pool) runPlain(ctx context.Context, s hostSpec, command string, bypass bool) (stdout, stderr []byte, code int, err error) {
	return p.runPlainInput(ctx, s, command, bypass, nil)
}

// runPlainInput is runPlain with stdin as the command's standard input.
func (p *Pool) runPlainInput(ctx context.Context, s hostSpec, command string, bypass bool, stdin []byte) (stdout, stderr []byte, code int, err error) {
	ss, err := p.startSession(ctx, s, bypass, "exec", command)
	if err != nil {
		return nil, nil, -1, err
	}
	defer ss.ch.Close()
	outBuf, errBuf, err := ss.collect(ctx, stdin)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("run on %s: %w", s.id, err)
	}
	if !ss.hasExited() {
		return outBuf, errBuf, -1, fmt.Errorf("run on %s: the session ended without an exit status", s.id)
	}
	return outBuf, errBuf, ss.code, nil
}

// collect writes stdin to the session and ends its input, and reads its
// output (at most maxPlainOutput bytes a stream) until the channel is
// gone; ending ctx closes it and returns ctx's error.
func (ss *session) collect(ctx context.Context, stdin []byte) (stdout, stderr []byte, err error) {
	go func() {
		if len(stdin) > 0 {
			_, _ = ss.ch.Write(stdin)
		}
		_ = ss.ch.CloseWrite()
	}()
	var outBuf, errBuf bytes.Buffer
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		_, _ = io.Copy(&capWriter{&outBuf, maxPlainOutput}, ss.ch)
	}()
	go func() {
		defer readers.Done()
		_, _ = io.Copy(&capWriter{&errBuf, maxPlainOutput}, ss.ch.Stderr())
	}()
	select {
	case <-ss.done:
	case <-ctx.Done():
		ss.ch.Close()
		return nil, nil, ctx.Err()
	}
	readers.Wait() // the channel is closed: the readers are at its end
	return outBuf.Bytes(), errBuf.Bytes(), nil
}

// capWriter keeps at most n bytes and discards the rest.
type capWriter struct {
	buf *bytes.Buffer
	n   int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.n - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Package ssh is the agentless transport: it runs commands on hosts without
// a minion over SSH (golang.org/x/crypto/ssh) and moves files over SFTP
// (github.com/pkg/sftp). Host keys are checked against a known_hosts file
// owned by felix (strict, or accept-new); connections are pooled per host
// and sessions multiplexed over them. The same connections serve bootstrap.
//
// # Connections and sessions
//
// A Pool keeps one connection per login (user@host:port and key file),
// dialled on first use and shared by every command to that host. Commands
// run in sessions (SSH channels) multiplexed over it. A connection carries
// at most Config.SessionsPerConn sessions at once (OpenSSH's MaxSessions
// default, 10); further callers wait for a free session rather than open a
// second connection, which keeps the load on the host and the count of
// connections predictable. When the server refuses a session while fewer
// are open (a lower MaxSessions), the limit of that connection drops to
// the number open and callers wait likewise. Only the kill sent at a
// deadline may exceed the limit; if the server refuses it, it goes over a
// short-lived connection of its own.
//
// A connection unused for IdleTimeout is closed by a janitor. At most
// MaxConns connections are open: a new host then evicts the least recently
// used idle connection, or waits for one to become idle. A connection that
// died (the host rebooted) is noticed when it closes or when opening a
// session on it fails or hangs for ConnectTimeout, and is redialled once.
//
// # Jump hosts
//
// A target with jump hosts (model.SSHTarget.Jump, OpenSSH's ProxyJump) is
// dialled through them: its TCP stream is a direct-tcpip channel of the
// last hop's connection, which is itself dialled through the hops before
// it. Hop connections are pooled like any other, keyed by their login and
// the chain before them, so 200 hosts behind one bastion share one
// connection to it (tunnels do not take its session slots, and it is not
// idle while a tunnel is open). Each hop's host key is checked against
// known_hosts under the pool's policy before anything is sent through it:
// a hop that fails stops the chain there and the error names it. Each hop
// has its own ConnectTimeout. A bastion that dies takes its tunnels with
// it; the next operations dial the chain again.
//
// # Commands
//
// sshd runs every command in a session of its own (it calls setsid), so
// the command's shell leads its own process group. felix sends a fixed
// wrapper as the command; the command line, working directory and
// environment follow on the session's standard input as data, and the
// wrapper reports the process group on standard error (a line felix strips)
// before it execs /bin/sh -c with the command line. At the deadline felix
// opens another session that signals the group: SIGTERM, then SIGKILL two
// seconds later. Nothing but the command line itself is ever given to a
// shell as code.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/model"
)

// Name is the transport's name in results.
const Name = "ssh"

// Host-key policies.
const (
	PolicyStrict    = "strict"     // an unknown host is an error
	PolicyAcceptNew = "accept-new" // an unknown host's key is recorded; a changed key is still an error
)

// Environment variables read for credentials.
const (
	EnvPassphrase = "FELIX_SSH_PASSPHRASE" // passphrase of encrypted key files
	EnvPassword   = "FELIX_SSH_PASSWORD"   // password authentication, only from here
)

// Defaults for a Config's zero fields.
const (
	DefaultConnectTimeout  = 10 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultMaxConns        = 1000
	DefaultSessionsPerConn = 10
)

// ErrHostKey marks a host-key failure: unknown under strict, or changed.
var ErrHostKey = errors.New("host key")

// ErrClosed is returned (wrapping exec.ErrUnreachable) by a closed Pool.
var ErrClosed = errors.New("ssh pool closed")

// Config configures a Pool.
type Config struct {
	// KnownHosts is felix's own known_hosts file (created when missing).
	KnownHosts string
	// Policy is PolicyStrict (default) or PolicyAcceptNew.
	Policy string
	// KeyFiles are private keys to offer; empty means ~/.ssh/id_ed25519,
	// id_ecdsa and id_rsa, those that exist.
	KeyFiles []string
	// KeyDirs confines the key files hosts name for themselves to these
	// directories; empty means no confinement. Config.KeyFiles are not
	// confined: the operator chose them.
	KeyDirs []string
	// NoAgent disables ssh-agent (SSH_AUTH_SOCK).
	NoAgent bool
	// PasswordHosts are the only hosts FELIX_SSH_PASSWORD is offered to:
	// host names or IP addresses as hosts name them, or CIDR ranges. Empty
	// offers it to none. Matched on the address dialled, not the host's
	// id, which an API caller chooses.
	PasswordHosts []string
	// User is the login when a host names none; default "root".
	User string
	// ConnectTimeout bounds dialling and the handshake; default 10s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a pooled connection unused this long; default 5m.
	IdleTimeout time.Duration
	// MaxConns bounds pooled connections; default 1000.
	MaxConns int
	// SessionsPerConn bounds the sessions open at once on one connection;
	// default 10, OpenSSH's MaxSessions. It is lowered per connection when
	// a server refuses sessions earlier.
	SessionsPerConn int
	// RemoteTmp is where script and file commands are staged on hosts that
	// name no remote_tmp of their own (model.ValidRemoteTmp); default /tmp.
	// When it cannot execute, /var/tmp and ~/.felix/tmp are tried (see
	// makeJobDir).
	RemoteTmp string
	// Jump are per-group jump hosts: "LABEL=GLOB JUMPHOSTS" each, e.g.
	// "group=lab bastion1,ops@bastion2:2222"; a target with a label
	// matching goes through those hosts unless it names its own (or
	// NoJump). The first rule that matches wins.
	Jump []string
	// SSHConfig, when set, is an OpenSSH client configuration file whose
	// Host blocks fill in what a target leaves unset: HostName, User, Port,
	// IdentityFile and ProxyJump (see hostconfig.go).
	SSHConfig string
	// Prompt, if set, asks for a key's passphrase on a terminal when the
	// environment has none.
	Prompt func(keyPath string) ([]byte, error)
	// Log receives debug and warning logs; may be nil.
	Log *slog.Logger
}

// Pool holds SSH connections, one per host, and satisfies exec.Transport.
type Pool struct {
	set  atomic.Pointer[settings] // the config in force; Reconfigure replaces it
	log  *slog.Logger
	keys keyring

	dials atomic.Int64 // connections dialled, for Stats

	stages stageCache  // which staging directory worked, per login
	noSFTP noSFTPCache // logins without an sftp-server

	mu      sync.Mutex
	conns   map[string]*conn // by hostSpec.key, dialling or open; protected by mu
	changed chan struct{}    // closed and replaced when a session or connection is released; protected by mu
	closed  bool             // protected by mu

	killing int // kills at deadlines in flight; protected by mu. Close waits for them first

	done chan struct{}  // closed by Close; stops the janitor
	bg   sync.WaitGroup // dials, connection watchers and the janitor
}

var _ exec.Transport = (*Pool)(nil)

// settings are a Pool's Config, checked and with its defaults filled in,
// and the known_hosts file it names. Each Reconfigure makes new settings
// with the next generation; a connection serves only operations that
// began under the settings it was dialled with (hostSpec.key has the
// generation), so what starts after a Reconfigure dials afresh under the
// new settings while sessions already open go on.
type settings struct {
	Config
	kh        *knownHosts
	gen       uint64
	jumpRules []jumpRule // Config.Jump, parsed
	sshConfig *sshConfig // Config.SSHConfig, read; nil when unset
}

// conf returns the settings in force.
func (p *Pool) conf() *settings { return p.set.Load() }

// conn is one pooled connection.
type conn struct {
	spec  hostSpec
	ready chan struct{} // closed when the dial ended; client or err is set then

	// protected by Pool.mu:
	client   *ssh.Client
	err      error
	active   int       // sessions open
	tunnels  int       // connections to further hosts tunnelled through this one (a jump host)
	limit    int       // sessions allowed at once
	lastUsed time.Time // when a session last started or ended
	dead     bool      // dropped from the pool
}

// hostSpec is where and as whom a target is reached.
type hostSpec struct {
	id      string // the target's id, for messages
	host    string
	port    int
	user    string
	keyPath string
	become  bool
	// becomeUser is the user become runs as, through sudo -n -u; "" is
	// root. Checked by model.ValidUser, so safe to quote into a command.
	becomeUser string
	// remoteTmp is the host's own staging directory; "" means Config.RemoteTmp.
	remoteTmp string
	jump      []model.SSHHop // jump hosts to tunnel through, first hop first
	isHop     bool           // this is a jump host of another connection
	addr      string         // host:port
	key       string         // the pool's key: one connection per login and generation of settings
	set       *settings      // in force when the operation began
}

func (s hostSpec) String() string { return s.user + "@" + s.addr }

// sudo is the prefix of a remote command line that runs it under become:
// "" without become, "sudo -n " as root, "sudo -n -u 'USER' " as the
// become user (a valid model.ValidUser name, quoted as its own word).
func (s hostSpec) sudo() string {
	switch {
	case !s.become:
		return ""
	case s.becomeUser == "":
		return "sudo -n "
	}
	return "sudo -n -u '" + s.becomeUser + "' "
}

// NewPool returns a Pool; it fails on an unreadable known_hosts file or a
// bad policy.
func NewPool(cfg Config) (*Pool, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set, err := newSettings(cfg, nil, log)
	if err != nil {
		return nil, err
	}
	warnPassword(log, set)
	p := &Pool{log: log, conns: make(map[string]*conn), changed: make(chan struct{}), done: make(chan struct{})}
	p.set.Store(set)
	p.bg.Add(1)
	go p.janitor()
	return p, nil
}

// newSettings checks cfg and fills in its defaults. The known_hosts file
// of cur (the settings in force, if any) is kept when cfg names the same.
func newSettings(cfg Config, cur *settings, log *slog.Logger) (*settings, error) {
	switch cfg.Policy {
	case "":
		cfg.Policy = PolicyStrict
	case PolicyStrict, PolicyAcceptNew:
	default:
		return nil, fmt.Errorf("ssh host-key policy %q: want %s or %s", cfg.Policy, PolicyStrict, PolicyAcceptNew)
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.SessionsPerConn <= 0 {
		cfg.SessionsPerConn = DefaultSessionsPerConn
	}
	if err := model.ValidRemoteTmp(cfg.RemoteTmp); err != nil {
		return nil, fmt.Errorf("ssh.%w", err)
	}
	for _, h := range cfg.PasswordHosts {
		if _, _, err := net.ParseCIDR(h); err != nil && model.ValidHost(h) != nil {
			return nil, fmt.Errorf("ssh password hosts: %q is neither a host name, an IP address nor a CIDR range", h)
		}
	}
	set := &settings{Config: cfg}
	var err error
	if set.jumpRules, err = parseJumpRules(cfg.Jump); err != nil {
		return nil, err
	}
	if cfg.SSHConfig != "" {
		if set.sshConfig, err = loadSSHConfig(cfg.SSHConfig, log); err != nil {
			return nil, err
		}
	}
	if cur != nil {
		set.gen = cur.gen + 1
		if cur.KnownHosts == cfg.KnownHosts {
			set.kh = cur.kh
			return set, nil
		}
	}
	kh, err := openKnownHosts(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("ssh pool: %w", err)
	}
	set.kh = kh
	return set, nil
}

func warnPassword(log *slog.Logger, set *settings) {
	if os.Getenv(EnvPassword) != "" && len(set.PasswordHosts) == 0 {
		log.Warn(EnvPassword + " is set but no host is allowed to receive it (ssh.password_hosts): it is offered to none")
	}
}

// Reconfigure replaces the pool's settings with cfg's, or, when cfg is
// invalid or its known_hosts file cannot be opened, keeps them and says
// why. cfg.Log and cfg.Prompt are NewPool's and are ignored here. Every
// operation that starts afterwards (an exec, a file, a host key) uses the
// new settings and connections dialled with them; operations already
// running go on with the old ones over their connections, which are closed
// once idle. Cached key files are read again.
func (p *Pool) Reconfigure(cfg Config) error {
	cur := p.conf()
	cfg.Log, cfg.Prompt = cur.Log, cur.Prompt
	set, err := newSettings(cfg, cur, p.log)
	if err != nil {
		return err
	}
	warnPassword(p.log, set)
	p.keys.mu.Lock()
	p.keys.cache = nil
	p.keys.mu.Unlock()
	p.mu.Lock()
	p.set.Store(set)
	var idle []*ssh.Client
	for k, c := range p.conns {
		if c.client != nil && c.active == 0 && c.tunnels == 0 {
			delete(p.conns, k)
			c.dead = true
			idle = append(idle, c.client)
		}
	}
	p.broadcastLocked() // MaxConns may have grown
	p.mu.Unlock()
	for _, cl := range idle {
		cl.Close()
	}
	return nil
}

// Name returns "ssh".
func (p *Pool) Name() string { return Name }

// Stats are a Pool's counters.
type Stats struct {
	Conns    int   // connections open or being dialled
	Sessions int   // sessions open
	Dials    int64 // connections dialled since the pool was made
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Conns: len(p.conns), Dials: p.dials.Load()}
	for _, c := range p.conns {
		st.Sessions += c.active
	}
	return st
}

// spec checks t's SSH settings and fills in the defaults.
func (p *Pool) spec(t model.Target) (hostSpec, error) {
	if t.SSH == nil {
		return hostSpec{}, fmt.Errorf("host %s has no SSH settings: %w", t.ID, exec.ErrUnreachable)
	}
	set := p.conf()
	st := set.applyHostConfig(*t.SSH)
	s := hostSpec{id: t.ID, host: st.Host, port: st.Port, user: st.User, keyPath: st.KeyPath, become: st.Become || st.BecomeUser != "", becomeUser: st.BecomeUser, jump: st.Jump, remoteTmp: st.RemoteTmp, set: set}
	if s.id == "" {
		s.id = s.host
	}
	if s.port == 0 {
		s.port = 22
	}
	if s.user == "" {
		s.user = s.set.User
	}
	switch {
	case s.host == "" || strings.IndexFunc(s.host, badHostRune) >= 0 || s.host[0] == '-':
		return hostSpec{}, fmt.Errorf("host %s: bad SSH host %q", s.id, s.host)
	case s.port < 1 || s.port > 65535:
		return hostSpec{}, fmt.Errorf("host %s: bad SSH port %d", s.id, s.port)
	case strings.IndexFunc(s.user, badHostRune) >= 0 || s.user[0] == '-':
		return hostSpec{}, fmt.Errorf("host %s: bad SSH user %q", s.id, s.user)
	case model.ValidUser(s.becomeUser) != nil:
		return hostSpec{}, fmt.Errorf("host %s: become user: %w", s.id, model.ValidUser(s.becomeUser))
	case strings.ContainsRune(s.keyPath, 0):
		return hostSpec{}, fmt.Errorf("host %s: bad SSH key path %q", s.id, s.keyPath)
	}
	if err := model.ValidRemoteTmp(s.remoteTmp); err != nil {
		return hostSpec{}, fmt.Errorf("host %s: %w", s.id, err)
	}
	if len(s.jump) > model.MaxJumpHops {
		return hostSpec{}, fmt.Errorf("host %s: %d jump hosts; at most %d", s.id, len(s.jump), model.MaxJumpHops)
	}
	for _, h := range s.jump {
		if err := validHop(h); err != nil {
			return hostSpec{}, fmt.Errorf("host %s: jump host %s: %w", s.id, h, err)
		}
	}
	s.addr = net.JoinHostPort(strings.Trim(s.host, "[]"), strconv.Itoa(s.port))
	s.key = s.user + "@" + s.addr + "\x00" + s.keyPath + "\x00" + strconv.FormatUint(s.set.gen, 10)
	if len(s.jump) > 0 {
		s.key += "\x00via " + s.hop().key
	}
	return s, nil
}

// validHop reports why h cannot be a jump host, or nil.
func validHop(h model.SSHHop) error {
	if err := model.ValidHost(h.Host); err != nil {
		return err
	}
	if h.Port != 0 {
		if err := model.ValidPort(h.Port); err != nil {
			return err
		}
	}
	if err := model.ValidUser(h.User); err != nil {
		return err
	}
	return model.ValidKeyPath(h.KeyPath)
}

// hop returns the spec of the last jump host of s, through which s is
// dialled; its own jump hosts are those before it. s must have some.
func (s hostSpec) hop() hostSpec {
	h := s.jump[len(s.jump)-1]
	hs := hostSpec{id: h.Host, host: h.Host, port: h.Port, user: h.User, keyPath: h.KeyPath, jump: s.jump[:len(s.jump)-1], isHop: true, set: s.set}
	if hs.port == 0 {
		hs.port = model.DefaultSSHPort
	}
	if hs.user == "" {
		hs.user = s.set.User
	}
	hs.addr = net.JoinHostPort(h.Host, strconv.Itoa(hs.port))
	hs.key = hs.user + "@" + hs.addr + "\x00" + hs.keyPath + "\x00" + strconv.FormatUint(s.set.gen, 10)
	if len(hs.jump) > 0 {
		hs.key += "\x00via " + hs.hop().key
	}
	return hs
}

// dialTCP opens a byte stream to s.addr: a TCP connection, or a channel
// tunnelled through s's last jump host (dialled, or shared, in the pool;
// each hop's host key checked as any connection's, so a hop that fails
// stops the chain there and nothing is sent further). via is the jump
// host's connection with the tunnel counted on it, which the caller
// releases (releaseTunnel) once the stream is done; nil for a direct
// connection. A jump host that does not answer the channel request (it
// died without closing the connection) is dropped from the pool, so the
// next attempt dials it afresh. The error of a
// direct connection is the dialer's, for the caller to wrap; through jump
// hosts it says which hop failed and wraps exec.ErrUnreachable. Waiting
// for the jump host's connection is bounded by hopCtx (the jump host's own
// dial has its own ssh.connect_timeout), the rest by ctx.
func (p *Pool) dialTCP(ctx, hopCtx context.Context, s hostSpec, op string) (nc net.Conn, via *conn, err error) {
	if len(s.jump) == 0 {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
		return nc, nil, err
	}
	hs := s.hop()
	via, err = p.acquire(hopCtx, hs, true)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: through jump host %s: %w", op, s, hs, err)
	}
	// A tunnel is not a session: it holds the jump host open without
	// taking one of its session slots.
	p.mu.Lock()
	via.active--
	via.tunnels++
	p.mu.Unlock()
	nc, err = via.client.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		p.releaseTunnel(via)
		var refused *ssh.OpenChannelError // the jump host answered: it is alive
		if !errors.As(err, &refused) && !p.alive(via, s.set.ConnectTimeout) {
			p.drop(via)
		}
		return nil, nil, unreachable(s, op, fmt.Errorf("jump host %s could not open a TCP connection to %s: %w", hs, s.addr, err))
	}
	return nc, via, nil
}

func badHostRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }

// unreachable wraps err as exec.ErrUnreachable, saying what failed.
func unreachable(s hostSpec, op string, err error) error {
	return fmt.Errorf("%s %s: %w: %w", op, s, err, exec.ErrUnreachable)
}

// connect dials s and authenticates. Errors wrap exec.ErrUnreachable; host
// key failures also ErrHostKey.
func (p *Pool) connect(ctx context.Context, s hostSpec) (*ssh.Client, error) {
	p.dials.Add(1)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.set.ConnectTimeout)
	defer cancel()
	methods, closer, skipped := p.authMethods(s)
	defer closer.Close()
	if len(methods) == 0 {
		return nil, unreachable(s, "connect to", fmt.Errorf("no credentials: no ssh-agent keys, no usable key file and %s is not set%s", EnvPassword, authHint(skipped)))
	}
	var hostKeyErr error // what the callback refused, if it did
	cfg := &ssh.ClientConfig{
		User: s.user,
		Auth: methods,
		HostKeyCallback: func(_ string, remote net.Addr, key ssh.PublicKey) error {
			hostKeyErr = s.set.kh.check(s.addr, remote, key, s.set.Policy)
			return hostKeyErr
		},
		ClientVersion: "SSH-2.0-felix",
	}
	cfg.HostKeyAlgorithms, _ = s.set.kh.algorithms(s.addr)
	// timedOut names the limit when it, not the caller, ended the attempt.
	timedOut := func(what string, err error) error {
		if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s within %s (ssh.connect_timeout): %w", what, s.set.ConnectTimeout, err)
		}
		return err
	}
	nc, via, err := p.dialTCP(ctx, parent, s, "connect to")
	if err != nil {
		if len(s.jump) == 0 {
			err = unreachable(s, "connect to", timedOut("no TCP connection", err))
		}
		return nil, err
	}
	// The handshake honours ctx too: its end makes the connection fail.
	// A tunnelled stream has no deadlines; it is closed instead.
	stop := context.AfterFunc(ctx, func() {
		if nc.SetDeadline(time.Unix(1, 0)) != nil {
			nc.Close()
		}
	})
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.addr, cfg)
	if !stop() && err == nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		if via != nil {
			p.releaseTunnel(via)
		}
		if hostKeyErr != nil {
			return nil, hostKeyErr
		}
		hint := ""
		if strings.Contains(err.Error(), "unable to authenticate") {
			hint = authHint(skipped)
		}
		return nil, unreachable(s, "connect to", fmt.Errorf("%w%s", timedOut("no SSH handshake", err), hint))
	}
	_ = nc.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	if via != nil {
		// The tunnel is counted on the jump host as long as it lives.
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			_ = client.Wait()
			p.releaseTunnel(via)
		}()
	}
	return client, nil
}

// acquire returns s's connection with a session slot taken, dialling it if
// needed. bypass takes a slot even beyond the connection's limit.
func (p *Pool) acquire(ctx context.Context, s hostSpec, bypass bool) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed && (!bypass || s.isHop) { // a kill may still use an open connection
			p.mu.Unlock()
			return nil, unreachable(s, "connect to", ErrClosed)
		}
		c := p.conns[s.key]
		if c == nil {
			if len(p.conns) >= p.conf().MaxConns && !s.isHop { // a jump host waiting for a free connection could wait for its own tunnels
				victim := p.evictIdleLocked()
				if victim == nil {
					if err := p.waitLocked(ctx); err != nil {
						return nil, fmt.Errorf("wait for a free connection to %s: %w", s, err)
					}
					continue
				}
				go victim.Close()
			}
			c = &conn{spec: s, ready: make(chan struct{}), limit: s.set.SessionsPerConn}
			p.conns[s.key] = c
			p.bg.Add(1)
			go p.dial(c)
		}
		p.mu.Unlock()
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w", s, ctx.Err())
		}
		p.mu.Lock()
		switch {
		case c.err != nil:
			p.mu.Unlock()
			return nil, c.err
		case c.dead:
			p.mu.Unlock()
			continue
		case bypass || c.active < c.limit:
			c.active++
			c.lastUsed = time.Now()
			p.mu.Unlock()
			return c, nil
		}
		if err := p.waitLocked(ctx); err != nil {
			return nil, fmt.Errorf("wait for a free session on %s: %w", s, err)
		}
	}
}

// waitLocked unlocks mu and waits until a session or connection is
// released, or ctx ends.
func (p *Pool) waitLocked(ctx context.Context) error {
	ch := p.changed
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// broadcastLocked wakes everyone in waitLocked.
func (p *Pool) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// evictIdleLocked drops the least recently used idle connection and
// returns its client for the caller to close, or nil if none is idle.
func (p *Pool) evictIdleLocked() *ssh.Client {
	var victim *conn
	for _, c := range p.conns {
		if c.client != nil && c.active == 0 && c.tunnels == 0 && (victim == nil || c.lastUsed.Before(victim.lastUsed)) {
			victim = c
		}
	}
	if victim == nil {
		return nil
	}
	delete(p.conns, victim.spec.key)
	victim.dead = true
	return victim.client
}

// dial connects c and publishes the result.
func (p *Pool) dial(c *conn) {
	defer p.bg.Done()
	client, err := p.connect(context.Background(), c.spec)
	p.mu.Lock()
	switch {
	case err != nil:
		c.err = err
		if p.conns[c.spec.key] == c {
			delete(p.conns, c.spec.key)
		}
		c.dead = true
		p.broadcastLocked()
	case p.closed:
		c.err = unreachable(c.spec, "connect to", ErrClosed)
		c.dead = true
		client.Close()
	default:
		c.client = client
		c.lastUsed = time.Now()
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			_ = client.Wait()
			p.drop(c)
		}()
	}
	p.mu.Unlock()
	close(c.ready)
}

// drop removes c from the pool and closes it.
func (p *Pool) drop(c *conn) {
	p.mu.Lock()
	if p.conns[c.spec.key] == c {
		delete(p.conns, c.spec.key)
	}
	c.dead = true
	client := c.client
	p.broadcastLocked()
	p.mu.Unlock()
	if client != nil {
		client.Close()
	}
}

// release gives back a session slot of c and returns how many remain taken.
func (p *Pool) release(c *conn) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.active--
	c.lastUsed = time.Now()
	p.broadcastLocked()
	return c.active
}

// alive reports whether c's server answers a keepalive request within d.
func (p *Pool) alive(c *conn, d time.Duration) bool {
	answered := make(chan error, 1)
	go func() { // ends when the request is answered or the connection closed
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		answered <- err
	}()
	select {
	case err := <-answered:
		return err == nil
	case <-time.After(d):
		return false
	}
}

// releaseTunnel gives back a tunnel through jump host c.
func (p *Pool) releaseTunnel(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.tunnels--
	c.lastUsed = time.Now()
	p.broadcastLocked()
}

// janitor closes connections idle longer than IdleTimeout, and idle ones
// dialled under settings a Reconfigure has replaced.
func (p *Pool) janitor() {
	defer p.bg.Done()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		set := p.conf()
		tick.Reset(min(max(set.IdleTimeout/2, 10*time.Millisecond), 30*time.Second))
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			var idle []*ssh.Client
			p.mu.Lock()
			for k, c := range p.conns {
				if c.client != nil && c.active == 0 && c.tunnels == 0 && (now.Sub(c.lastUsed) >= set.IdleTimeout || c.spec.set.gen < set.gen) {
					delete(p.conns, k)
					c.dead = true
					idle = append(idle, c.client)
				}
			}
			if len(idle) > 0 {
				p.broadcastLocked()
			}
			p.mu.Unlock()
			for _, cl := range idle {
				cl.Close()
			}
		}
	}
}

// Exec runs cmd on t.SSH: line commands with /bin/sh -c, script and file
// commands from a private temporary directory filled over SFTP and removed
// afterwards; output streamed; at the deadline the remote process group is
// killed. An error wrapping exec.ErrUnreachable means nothing ran.
func (p *Pool) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	ex, err := p.exec(ctx, t, cmd, out)
	ex.Transport = Name
	return ex, err
}

func (p *Pool) exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	s, err := p.spec(t)
	if err != nil {
		return model.Exit{}, err
	}
	if out == nil {
		out = func(model.Stream, []byte) {}
	}
	if err := ctx.Err(); err != nil {
		return model.Exit{}, fmt.Errorf("exec on %s: %w", s.id, err)
	}
	if cmd.Shell != "" {
		return model.Exit{}, fmt.Errorf("exec on %s: shell %q is for Windows minions; SSH hosts run /bin/sh", s.id, cmd.Shell)
	}
	r := runSpec{line: cmd.Line, env: cmd.Env, dir: cmd.Dir, timeout: cmd.Timeout}
	if err := r.validate(); err != nil {
		return model.Exit{}, fmt.Errorf("exec on %s: %w", s.id, err)
	}
	if cmd.File != nil {
		return p.execFile(ctx, s, r, cmd.File, out)
	}
	return p.run(ctx, s, r, out)
}

// Facts probes the host for the same facts a minion reports.
func (p *Pool) Facts(ctx context.Context, t model.Target) (facts.Facts, error) {
	stdout, stderr, code, err := p.Run(ctx, t, facts.ProbeScript())
	if err != nil {
		return facts.Facts{}, fmt.Errorf("facts of %s: %w", t.ID, err)
	}
	f, err := facts.FromProbe(stdout)
	if err != nil {
		return facts.Facts{}, fmt.Errorf("facts of %s (probe exit %d, stderr %q): %w", t.ID, code, firstLine(stderr), err)
	}
	return f, nil
}

// maxRunOutput bounds each output stream Run keeps.
const maxRunOutput = 16 << 20

// Run runs a shell script (given on stdin, never spliced) and returns its
// output and exit code; bootstrap uses it.
//
// The script runs like a line command: the wrapper reads it from standard
// input and runs it with /bin/sh -c, standard input /dev/null, under sudo
// when t.SSH.Become. When ctx ends its process group is killed and the
// error wraps ctx's. The code is -1 when the script was killed by a
// signal. Background processes it leaves holding its output open are
// waited for two seconds at most. Each stream keeps at most 16 MiB; more is
// an error.
func (p *Pool) Run(ctx context.Context, t model.Target, script string) (stdout, stderr []byte, code int, err error) {
	return p.runCollect(ctx, t, runSpec{line: script})
}

// runCollect runs r like Run and returns its output and exit code.
func (p *Pool) runCollect(ctx context.Context, t model.Target, r runSpec) (stdout, stderr []byte, code int, err error) {
	s, err := p.spec(t)
	if err != nil {
		return nil, nil, -1, err
	}
	if err := r.validate(); err != nil {
		return nil, nil, -1, fmt.Errorf("run on %s: %w", s.id, err)
	}
	var mu sync.Mutex
	var bufs [3][]byte
	over := false
	ex, err := p.run(ctx, s, r, func(st model.Stream, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if len(bufs[st])+len(b) > maxRunOutput {
			over = true
			return
		}
		bufs[st] = append(bufs[st], b...)
	})
	mu.Lock()
	defer mu.Unlock()
	stdout, stderr = bufs[model.Stdout], bufs[model.Stderr]
	switch {
	case err != nil:
		return stdout, stderr, -1, err
	case ex.Cancelled || ex.TimedOut:
		cause := context.Cause(ctx)
		if cause == nil { // the run's own timeout, not the caller's context
			cause = fmt.Errorf("timed out after %s", r.timeout)
		}
		return stdout, stderr, ex.Code, fmt.Errorf("run on %s: killed: %w", s.id, cause)
	case over:
		return stdout, stderr, ex.Code, fmt.Errorf("run on %s: output exceeds %d bytes", s.id, maxRunOutput)
	}
	return stdout, stderr, ex.Code, nil
}

// Close closes every connection. Kills already sent at deadlines are let
// finish first (a few seconds at most).
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	for p.killing > 0 {
		if err := p.waitLocked(context.Background()); err != nil {
			return err
		}
		p.mu.Lock()
	}
	var clients []io.Closer
	for k, c := range p.conns {
		if c.client != nil {
			clients = append(clients, c.client)
		}
		c.dead = true
		delete(p.conns, k)
	}
	p.broadcastLocked()
	p.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	p.bg.Wait()
	return nil
}

// startKill and endKill count the kills in flight.
func (p *Pool) startKill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killing++
}

func (p *Pool) endKill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killing--
	p.broadcastLocked()
}

// firstLine returns the first line of b, for messages.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

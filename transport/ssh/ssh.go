// Package ssh is the agentless transport: it runs commands on hosts without
// a minion over SSH (golang.org/x/crypto/ssh) and moves files over SFTP
// (github.com/pkg/sftp). Host keys are checked against a known_hosts file
// owned by felix (strict, or accept-new); connections are pooled per host
// and sessions multiplexed over them. The same connections serve bootstrap.
package ssh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/facts"
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

// ErrHostKey marks a host-key failure: unknown under strict, or changed.
var ErrHostKey = errors.New("host key")

// Config configures a Pool.
type Config struct {
	// KnownHosts is felix's own known_hosts file (created when missing).
	KnownHosts string
	// Policy is PolicyStrict (default) or PolicyAcceptNew.
	Policy string
	// KeyFiles are private keys to offer; empty means ~/.ssh/id_ed25519,
	// id_ecdsa and id_rsa, those that exist.
	KeyFiles []string
	// NoAgent disables ssh-agent (SSH_AUTH_SOCK).
	NoAgent bool
	// User is the login when a host names none; default "root".
	User string
	// ConnectTimeout bounds dialling and the handshake; default 10s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a pooled connection unused this long; default 5m.
	IdleTimeout time.Duration
	// MaxConns bounds pooled connections; default 1000.
	MaxConns int
	// Prompt, if set, asks for a key's passphrase on a terminal when the
	// environment has none.
	Prompt func(keyPath string) ([]byte, error)
	// Log receives debug and warning logs; may be nil.
	Log *slog.Logger
}

// Pool holds SSH connections, one per host, and satisfies exec.Transport.
type Pool struct {
	cfg Config
}

var _ exec.Transport = (*Pool)(nil)

// NewPool returns a Pool; it fails on an unreadable known_hosts file or a
// bad policy.
func NewPool(cfg Config) (*Pool, error) {
	return nil, errors.New("not implemented")
}

// Name returns "ssh".
func (p *Pool) Name() string { return Name }

// Exec runs cmd on t.SSH: line commands with /bin/sh -c, script and file
// commands from a private temporary directory filled over SFTP and removed
// afterwards; output streamed; at the deadline the remote process group is
// killed. An error wrapping exec.ErrUnreachable means nothing ran.
func (p *Pool) Exec(ctx context.Context, t exec.Target, cmd exec.Command, out exec.OutputFunc) (exec.Exit, error) {
	return exec.Exit{}, errors.New("not implemented")
}

// Facts probes the host for the same facts a minion reports.
func (p *Pool) Facts(ctx context.Context, t exec.Target) (facts.Facts, error) {
	return facts.Facts{}, errors.New("not implemented")
}

// Run runs a shell script (given on stdin to /bin/sh, never spliced) and
// returns its output and exit code; bootstrap uses it.
func (p *Pool) Run(ctx context.Context, t exec.Target, script string) (stdout, stderr []byte, code int, err error) {
	return nil, nil, 0, errors.New("not implemented")
}

// Upload writes r to path on the host with mode, atomically (a temporary
// name renamed into place).
func (p *Pool) Upload(ctx context.Context, t exec.Target, path string, r io.Reader, mode uint32) error {
	return errors.New("not implemented")
}

// ReadFile reads a file from the host over SFTP.
func (p *Pool) ReadFile(ctx context.Context, t exec.Target, path string) ([]byte, error) {
	return nil, errors.New("not implemented")
}

// HostKey returns the host key fingerprint (SHA256:...) a host presents,
// without authenticating; `felix hosts trust` uses it.
func (p *Pool) HostKey(ctx context.Context, t exec.Target) (string, error) {
	return "", errors.New("not implemented")
}

// Trust records the host's current key in the known_hosts file after
// checking it has the fingerprint the operator confirmed.
func (p *Pool) Trust(ctx context.Context, t exec.Target, fingerprint string) error {
	return errors.New("not implemented")
}

// Close closes every connection.
func (p *Pool) Close() error { return nil }

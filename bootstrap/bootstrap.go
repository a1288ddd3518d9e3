// Package bootstrap installs felix minions on hosts over SSH, in one command
// (felix bootstrap, POST /api/v1/bootstrap), and repairs or upgrades them
// when run again.
//
// A host in the agentless inventory (felix hosts, matched by id or
// address) is reached with its SSH settings there; any other with the
// user, port and key given. The login must be able to write the install
// paths: root, or (become, felix bootstrap --become) a user with
// passwordless sudo, every script then run with sudo -n and files written
// by an SFTP server under sudo; the login recorded keeps become.
//
// For each host, over one SSH connection of the agentless transport:
//
//  1. Probe with a fixed script (it changes nothing): OS and architecture
//     (uname; x86_64 is amd64, aarch64 is arm64), whether systemd runs
//     (/run/systemd/system), the host name, and what felix already left there:
//     the minion binary's sha256 and version, its config, its certificate,
//     its systemd unit, whether it runs. The existing config and certificate
//     are read over SFTP.
//     The master URL the minion will use is the configured one, else
//     https://ADDR:PORT with ADDR the local address of this very SSH
//     connection (the master listens on all addresses: that one is routed
//     to the host). The host checks it can open a TCP connection to it
//     (bash's /dev/tcp, else nc; 3 attempts of 5 s); one that cannot fails with
//     the URL named, before anything is written.
//  2. Pick the binary minion-linux-ARCH from the master's minion directory
//     (built by make dist). No binary for the host's OS and architecture:
//     the host fails with "no minion binary for linux/ARCH" and nothing has
//     been written on it.
//  3. The minion id is the one asked for, else the one in the host's existing
//     config (so a rerun keeps it), else the host's id in the agentless
//     inventory, else the host's name. An id registered in
//     the inventory with a certificate other than the host's is refused before
//     anything is written (re-keying is an operator's decision: felix keys
//     delete ID).
//  4. Install, each step only when needed: the binary to
//     /usr/local/bin/felix-minion (0755, uploaded atomically, only when its
//     sha256 differs); the config /etc/felix/minion.toml (0600) with the
//     master URL and fingerprint, the id, listen and data_dir
//     /var/lib/felix/minion, encoded by a TOML encoder, never spliced into a
//     shell. A minion not yet registered with the host's certificate gets a
//     single-use join token valid for ten minutes in it — not auto-accept:
//     the minion registers pending and is accepted only once step 6 has
//     matched its certificate, so whoever reads or races the token gets at
//     most a pending key; one
//     already registered needs none (it proves its key). The data directory is
//     never touched, so the minion keeps its key and a rerun re-registers the
//     same certificate instead of getting 409.
//  5. Start it. Where systemd runs: the unit
//     /etc/systemd/system/felix-minion.service (Restart=always), daemon-reload,
//     enable, and start, or restart when the binary, config or unit changed.
//     Where OpenRC runs (/sbin/openrc-run): the service script
//     /etc/init.d/felix-minion (under OpenRC's supervise-daemon where it has
//     one, else the minion's own supervisor), rc-update add, and rc-service
//     start or restart. Elsewhere (a container, a network namespace): the old
//     minion and its supervisor are stopped through their pid files, and
//     the minion started under its own supervisor (minion start
//     --supervise: a child started again whenever it exits, with backoff)
//     in its own session, logging to /var/log/felix-minion.log, and started
//     at boot by an @reboot crontab line where crontab exists, else a line
//     in /etc/rc.local.
//  6. Wait, up to Timeout for the whole host, until the inventory shows the
//     minion registered (after the restart, when there was one). Then read the
//     minion's certificate over the same SSH connection and compare its
//     fingerprint with the registered one, so nobody can race the
//     registration with the token: a mismatch fails the host and rejects the
//     minion. A pending minion (registered earlier with a manual token) whose
//     certificate checks out is accepted.
//
// The result of a host says what was done: installed (no minion binary
// before), upgraded (a different binary was replaced), repaired (config,
// unit, boot entry or a stopped minion fixed) or unchanged.
//
// Upgrade (upgrade.go) is the same rerun with a binary the caller picks,
// for the fleet upgrade of a bootstrapped host over SSH: the old binary is
// kept as BIN.prev and put back when the new one does not register.
//
// InstallRoot puts every one of those paths under a directory and never
// touches systemd or the crontab (the minion is started detached and the
// boot line goes to ROOT/etc/rc.local). It exists for tests, whose "hosts"
// are network namespaces sharing this machine's file system, and for
// chroot-like setups.
package bootstrap

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
	"time"

	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// SSH is the part of the agentless transport bootstrap uses; satisfied by
// *ssh.Pool (transport/ssh).
type SSH interface {
	// Run runs script with /bin/sh, the script given on stdin.
	Run(ctx context.Context, t model.Target, script string) (stdout, stderr []byte, code int, err error)
	// Upload writes r to path with mode, atomically.
	Upload(ctx context.Context, t model.Target, path string, r io.Reader, mode uint32) error
	// ReadFile reads a file.
	ReadFile(ctx context.Context, t model.Target, path string) ([]byte, error)
	// LocalAddr is this end's address of the SSH connection to t.
	LocalAddr(ctx context.Context, t model.Target) (net.Addr, error)
}

// Result states.
const (
	StateOK     = "ok"
	StateFailed = "failed"
)

// Actions: what a successful bootstrap did.
const (
	ActionInstalled = "installed" // there was no minion binary
	ActionUpgraded  = "upgraded"  // a different minion binary was replaced
	ActionRepaired  = "repaired"  // config, unit, boot entry or a stopped minion was fixed
	ActionUnchanged = "unchanged" // everything was in place and running
)

// How the minion is run on the host.
const (
	InitSystemd   = "systemd"
	InitOpenRC    = "openrc"    // OpenRC's service script, /etc/init.d/felix-minion
	InitSupervise = "supervise" // minion start --supervise, started at boot by crontab or rc.local
)

// Defaults of a Bootstrapper's zero fields.
const (
	DefaultTimeout  = 2 * time.Minute // the master's bootstrap.timeout default
	DefaultParallel = 32
	// TokenTTL is how long a bootstrap's join token is valid.
	TokenTTL = 10 * time.Minute
)

// Result is one host's outcome.
type Result struct {
	Host        string
	ID          string
	State       string
	Reason      string
	Fingerprint string
	Arch        string
	Init        string
	Action      string
	// Login is the SSH login used for a host that is not in the agentless
	// inventory (what the caller gave); nil for one that is. The caller may
	// record it as the host's SSH settings (the fallback of its minion).
	Login *model.SSHTarget
}

// Bootstrapper installs minions over SSH. Its fields are set once, before
// the first call; its methods are safe for concurrent use.
type Bootstrapper struct {
	SSH   SSH
	Store *inventory.Store
	// MasterURL (https://host:port) and MasterFingerprint (sha256:...) go
	// into the minions' config. An empty MasterURL with MasterPort set
	// means https://ADDR:MasterPort, ADDR the local address of the SSH
	// connection to each host (the master listens on all addresses, and
	// that one is routed to the host).
	MasterURL         string
	MasterPort        int
	MasterFingerprint string
	// MinionDir holds minion-linux-amd64, minion-linux-arm64 (make dist).
	MinionDir string
	// Timeout bounds one host, from the probe to the fingerprint check.
	Timeout time.Duration
	// Port is the minions' gRPC listen port; 0 means the minion's default
	// listen (config.Minion, :4510).
	Port int
	// Parallel bounds the hosts bootstrapped at once by Many; 0 means 32.
	Parallel int
	// InstallRoot, when set, prefixes every install path and keeps bootstrap
	// away from systemd and the crontab (see the package comment).
	InstallRoot string
	// Log receives one line per host; may be nil.
	Log *slog.Logger

	mu   sync.Mutex
	sums map[string]fileSum // sha256 of local binaries by path; protected by mu
}

type fileSum struct {
	size int64
	mod  time.Time
	sum  string
}

func (b *Bootstrapper) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Many bootstraps targets in parallel (at most Parallel at once); ids[i],
// when given and not empty, is the id of targets[i]. It returns one result
// per target, in order.
func (b *Bootstrapper) Many(ctx context.Context, targets []model.Target, ids []string) []Result {
	limit := b.Parallel
	if limit <= 0 {
		limit = DefaultParallel
	}
	out := make([]Result, len(targets))
	hosts, err := b.hostIndex(ctx)
	if err != nil {
		for i, t := range targets {
			out[i] = Result{Host: hostName(t), State: StateFailed, Reason: err.Error()}
		}
		return out
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, t := range targets {
		id := ""
		if i < len(ids) {
			id = ids[i]
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			out[i] = Result{Host: hostName(t), ID: id, State: StateFailed, Reason: "cancelled before this host started"}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = b.bootstrap(ctx, t, id, hosts)
		}()
	}
	wg.Wait()
	return out
}

// hostName is how a target is named in results: its ID (what the caller
// asked for), else user@host:port.
func hostName(t model.Target) string {
	if t.ID != "" || t.SSH == nil {
		return t.ID
	}
	s := net.JoinHostPort(t.SSH.Host, strconv.Itoa(orDefault(t.SSH.Port, 22)))
	if t.SSH.User != "" {
		s = t.SSH.User + "@" + s
	}
	return s
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Host bootstraps one host; id may be empty (see the package comment). A
// failure is a result with the reason, never an error.
func (b *Bootstrapper) Host(ctx context.Context, t model.Target, id string) Result {
	hosts, err := b.hostIndex(ctx)
	if err != nil {
		return Result{Host: hostName(t), ID: id, State: StateFailed, Reason: err.Error()}
	}
	return b.bootstrap(ctx, t, id, hosts)
}

// bootstrap is Host with the agentless inventory loaded.
func (b *Bootstrapper) bootstrap(ctx context.Context, t model.Target, id string, hosts map[string]inventory.Host) Result {
	timeout := b.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r := Result{Host: hostName(t), ID: id}
	if err := b.host(ctx, t, hosts, &r); err != nil {
		r.State, r.Reason = StateFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(r.Reason, "within") {
			r.Reason = fmt.Sprintf("timed out after %s: %s", timeout, r.Reason)
		}
		b.log().Warn("bootstrap failed", "host", r.Host, "id", r.ID, "reason", r.Reason, "took", time.Since(start).Round(time.Millisecond))
		return r
	}
	r.State = StateOK
	b.log().Info("bootstrapped", "host", r.Host, "id", r.ID, "action", r.Action, "arch", r.Arch, "init", r.Init,
		"fingerprint", r.Fingerprint, "took", time.Since(start).Round(time.Millisecond))
	return r
}

// hostIndex returns the agentless inventory by id and by address (an id
// wins over another host's address).
func (b *Bootstrapper) hostIndex(ctx context.Context) (map[string]inventory.Host, error) {
	if b.Store == nil {
		return nil, nil
	}
	hs, err := b.Store.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the agentless inventory: %w", err)
	}
	idx := make(map[string]inventory.Host, 2*len(hs))
	for _, h := range hs {
		idx[h.Address] = h
	}
	for _, h := range hs {
		idx[h.ID] = h
	}
	return idx, nil
}

func (b *Bootstrapper) timeout() time.Duration {
	if b.Timeout > 0 {
		return b.Timeout
	}
	return DefaultTimeout
}

// sha256 returns the hex sha256 of a local file, cached while its size and
// modification time stay the same.
func (b *Bootstrapper) sha256(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b.mu.Lock()
	c, ok := b.sums[path]
	b.mu.Unlock()
	if ok && c.size == fi.Size() && c.mod.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	sum, _, err := content.SumFile(path)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	if b.sums == nil {
		b.sums = map[string]fileSum{}
	}
	b.sums[path] = fileSum{size: fi.Size(), mod: fi.ModTime(), sum: sum}
	b.mu.Unlock()
	return sum, nil
}

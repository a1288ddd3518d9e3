package minion

// minion swarm: many real minions in one process, like Salt's minionswarm,
// to load a master with thousands of hosts from one machine.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/agent"
	"github.com/felix-ops/felix/version"
)

const swarmUsage = `minion swarm: run COUNT real minions in this one process, to load a master.

Each minion has its own id (PREFIX00001, ...), key and certificate, data
directory (BASE_DIR/ID), registration with the master (join token, pinned
master certificate) and gRPC server with mutual TLS on its own loopback
address: FIRST_IP, the next address, ... (addresses ending in .0 or .255 are
skipped; every one stays in 127.0.0.0/8, which Linux routes to lo without
configuration). What they share: one facts gather (each reports its own id as
host name and its own address as its only IP) and a bound on registrations
in flight. SIGTERM or SIGINT stops them all, letting running commands finish.

Usage:
  minion swarm --count N --master URL --join-token TOKEN [flags]

Flags:
  --count N                   minions to run (default 100)
  --base-dir DIR              where their data directories go (default
                              /var/lib/felix/swarm for root, else
                              ~/.local/share/felix/swarm)
  --first-ip IP               address of the first minion (default 127.1.0.1)
  --offset K                  run minions K+1 to K+COUNT of the sequence (ids
                              and addresses as one swarm of K+COUNT has them),
                              to split a swarm over processes, each with its
                              own RLIMIT_NOFILE (default 0)
  --port PORT                 gRPC port of every minion (default 4510; 0: any)
  --master URL                master API URL, https://HOST:8443
  --join-token TOKEN          join token (an auto-accept one with --uses COUNT
                              spares accepting COUNT keys)
  --master-fingerprint FP     pin the master's certificate (sha256:HEX);
                              empty: each minion trusts on first use
  --exec MODE                 fork: run /bin/sh as the real minion does
                              (default); noop: answer every exec at once with
                              exit 0 and no output, starting no process, to
                              measure the master alone
  --noop-output BYTES         with --exec noop, print that many bytes on
                              stdout (64 KiB chunks) before the exit: output
                              volume without processes (default 0)
  --id-prefix P               id prefix (default swarm-)
  --register-parallel N       registrations in flight at once (default 16)
  --log-level L               debug, info, warn (default), error
`

// swarmConfig is what one swarm runs.
type swarmConfig struct {
	count             int
	offset            int // minions of the sequence run elsewhere, before these
	baseDir           string
	firstIP           netip.Addr
	port              int
	master            string
	joinToken         string
	masterFingerprint string
	exec              string // "fork" or "noop"
	noopOutput        int    // bytes a noop exec prints
	idPrefix          string
	registerParallel  int
}

// swarm is many minions sharing one process.
type swarm struct {
	cfg     swarmConfig
	log     *slog.Logger
	minions []*Minion
	joined  atomic.Int64 // minions registered
}

func cmdSwarm(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, logLevel, err := parseSwarm(args, stdout)
	if err != nil {
		return err
	}
	log, err := config.Logger(logLevel)
	if err != nil {
		return err
	}
	limit, err := raiseNoFile()
	if err != nil {
		return err
	}
	if err := checkNoFile(cfg, limit, log); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.baseDir, 0o700); err != nil {
		return fmt.Errorf("create base dir: %w", err)
	}
	// One swarm per base directory: two would share identities.
	removePID, err := daemon.WritePID(filepath.Join(cfg.baseDir, "swarm.pid"))
	if err != nil {
		return err
	}
	defer removePID()
	ctx, cancel := daemon.SignalContext(ctx)
	defer cancel()
	start := time.Now()
	s, err := newSwarm(ctx, cfg, log)
	if err != nil {
		return err
	}
	last := s.minions[len(s.minions)-1].cfg.Listen
	fmt.Fprintf(stdout, "felix minion swarm %s: %d minions %s..%s, exec %s, identities ready in %s\n", version.String(),
		cfg.count, s.minions[0].cfg.Listen, last, cfg.exec, time.Since(start).Round(time.Millisecond))
	return s.run(ctx, stdout)
}

// parseSwarm reads the swarm's flags.
func parseSwarm(args []string, stdout io.Writer) (cfg swarmConfig, logLevel string, err error) {
	fs := pflag.NewFlagSet("minion swarm", pflag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(stdout, swarmUsage) }
	var firstIP string
	fs.IntVar(&cfg.count, "count", 100, "")
	fs.IntVar(&cfg.offset, "offset", 0, "")
	fs.StringVar(&cfg.baseDir, "base-dir", config.DefaultDir("data", "swarm"), "")
	fs.StringVar(&firstIP, "first-ip", "127.1.0.1", "")
	fs.IntVar(&cfg.port, "port", 4510, "")
	fs.StringVar(&cfg.master, "master", "", "")
	fs.StringVar(&cfg.joinToken, "join-token", "", "")
	fs.StringVar(&cfg.masterFingerprint, "master-fingerprint", "", "")
	fs.StringVar(&cfg.exec, "exec", "fork", "")
	fs.IntVar(&cfg.noopOutput, "noop-output", 0, "")
	fs.StringVar(&cfg.idPrefix, "id-prefix", "swarm-", "")
	fs.IntVar(&cfg.registerParallel, "register-parallel", 16, "")
	fs.StringVar(&logLevel, "log-level", "warn", "")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.firstIP, err = netip.ParseAddr(firstIP); err != nil {
		return cfg, "", fmt.Errorf("--first-ip %q: %w", firstIP, err)
	}
	return cfg, logLevel, cfg.validate()
}

// validate checks a swarm's configuration.
func (c swarmConfig) validate() error {
	switch {
	case c.count < 1:
		return fmt.Errorf("--count %d: want at least 1", c.count)
	case c.offset < 0:
		return fmt.Errorf("--offset %d: want 0 or more", c.offset)
	case c.port < 0 || c.port > 65535:
		return fmt.Errorf("--port %d: want 0 to 65535", c.port)
	case c.master == "":
		return fmt.Errorf("master URL is not set (--master https://HOST:8443)")
	case c.exec != "fork" && c.exec != "noop":
		return fmt.Errorf("--exec %q: want fork or noop", c.exec)
	case c.noopOutput < 0 || (c.noopOutput > 0 && c.exec != "noop"):
		return fmt.Errorf("--noop-output %d: want 0 or more bytes, with --exec noop", c.noopOutput)
	case c.registerParallel < 1:
		return fmt.Errorf("--register-parallel %d: want at least 1", c.registerParallel)
	case c.baseDir == "":
		return fmt.Errorf("--base-dir is empty")
	}
	return nil
}

// swarmAddrs returns n loopback addresses from first on, skipping those
// whose last byte is 0 or 255 (a network's and a broadcast address in a /24,
// which tools and readers trip over), all within 127.0.0.0/8.
func swarmAddrs(first netip.Addr, n int) ([]netip.Addr, error) {
	if !first.Is4() || first.As4()[0] != 127 {
		return nil, fmt.Errorf("--first-ip %s: want an IPv4 loopback address (127.x.y.z)", first)
	}
	addrs := make([]netip.Addr, 0, n)
	for a := first; len(addrs) < n; a = a.Next() {
		if !a.IsValid() || !a.Is4() || a.As4()[0] != 127 {
			return nil, fmt.Errorf("%d minions from %s run past 127.255.255.254", n, first)
		}
		if b := a.As4()[3]; b != 0 && b != 255 {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// newSwarm makes (or loads) every minion's identity, several at a time.
func newSwarm(ctx context.Context, cfg swarmConfig, log *slog.Logger) (*swarm, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	addrs, err := swarmAddrs(cfg.firstIP, cfg.offset+cfg.count)
	if err != nil {
		return nil, err
	}
	addrs = addrs[cfg.offset:]
	if err := os.MkdirAll(cfg.baseDir, 0o700); err != nil {
		return nil, fmt.Errorf("create base dir: %w", err)
	}
	shared, err := facts.Gather(ctx)
	if err != nil {
		log.Warn("gather facts", "err", err)
	}
	s := &swarm{cfg: cfg, log: log, minions: make([]*Minion, cfg.count)}
	slots := make(chan struct{}, cfg.registerParallel)
	run := agent.Runner(nil) // the real minion's local.Run
	if cfg.exec == "noop" {
		run = noopRunner(cfg.noopOutput)
	}
	width := max(5, len(strconv.Itoa(cfg.offset+cfg.count)))

	// Key generation is CPU work and writing the files waits on the disk:
	// a few per core keep both busy.
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		mu    sync.Mutex
		first error // the first failure; protected by mu
	)
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < cfg.count; i = int(next.Add(1) - 1) {
				m, err := s.newMinion(i, width, addrs[i], shared, run, slots)
				if err == nil {
					err = ctx.Err()
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				s.minions[i] = m
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return s, nil
}

// newMinion makes the swarm's i-th minion at addr.
func (s *swarm) newMinion(i, width int, addr netip.Addr, shared facts.Facts, run agent.Runner, slots chan struct{}) (*Minion, error) {
	id := fmt.Sprintf("%s%0*d", s.cfg.idPrefix, width, s.cfg.offset+i+1)
	cfg := config.Minion{
		Master: s.cfg.master, MasterFingerprint: s.cfg.masterFingerprint, JoinToken: s.cfg.joinToken, ID: id,
		Listen: net.JoinHostPort(addr.String(), strconv.Itoa(s.cfg.port)), DataDir: filepath.Join(s.cfg.baseDir, id),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("minion %s: %w", id, err)
	}
	m, err := New(cfg, s.log.With("minion", id))
	if err != nil {
		return nil, fmt.Errorf("minion %s: %w", id, err)
	}
	// One host's facts, told as this minion's: its id is its host name and
	// its loopback address its only IP, so no two report the same.
	f := shared
	f.Hostname, f.IPs = id, []string{addr.String()}
	m.hooks = hooks{
		run:      run,
		gather:   func(context.Context) (facts.Facts, error) { return f, nil },
		slots:    slots,
		onJoined: func() { s.joined.Add(1) },
	}
	return m, nil
}

// run runs every minion until ctx ends, reporting on stdout when all have
// registered. A minion that fails (its address taken, its registration
// refused) stops the whole swarm: a swarm short of hosts would mislead.
func (s *swarm) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error // set once, read after wg.Wait
	)
	start := time.Now()
	for _, m := range s.minions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				once.Do(func() {
					first = fmt.Errorf("minion %s: %w", m.cfg.ID, err)
					cancel()
				})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.report(ctx, stdout, start)
	}()
	wg.Wait()
	return first
}

// report prints progress every 10 s until every minion has registered,
// then how long registration took.
func (s *swarm) report(ctx context.Context, stdout io.Writer, start time.Time) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastPrint := start
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := s.joined.Load()
		if n >= int64(len(s.minions)) {
			fmt.Fprintf(stdout, "swarm: all %d minions registered in %.2fs\n", n, time.Since(start).Seconds())
			return
		}
		if time.Since(lastPrint) >= 10*time.Second {
			lastPrint = time.Now()
			fmt.Fprintf(stdout, "swarm: %d of %d minions registered\n", n, len(s.minions))
		}
	}
}

// noopRunner is the runner of `minion swarm --exec=noop`: it answers at
// once with exit 0, after printing size bytes of stdout, and starts no
// process.
func noopRunner(size int) agent.Runner {
	chunk := bytes.Repeat([]byte("felix swarm output line, printed by a noop exec to load the master.\n"), 1024)[:64<<10]
	return func(_ context.Context, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		for left := size; left > 0; left -= len(chunk) {
			out(model.Stdout, chunk[:min(left, len(chunk))])
		}
		return model.Exit{}, nil
	}
}

// File descriptors a swarm needs: each minion holds its listener and the
// master's connection, a registration in flight one more; with --exec=fork
// a running command holds its two output pipes and, while it starts, the
// pipes' other ends, /dev/null and the start-error pipe.
const (
	fdsPerMinion = 2
	fdsPerFork   = 5
	fdsSpare     = 64
)

// checkNoFile refuses a swarm whose minions cannot all hold their sockets
// with limit file descriptors, and warns when commands on every minion at
// once (fork mode) could run out: those would fail with EMFILE on the
// minion, which the master reports as failed hosts.
func checkNoFile(cfg swarmConfig, limit uint64, log *slog.Logger) error {
	n := uint64(cfg.count)
	need := fdsPerMinion*n + uint64(cfg.registerParallel) + fdsSpare
	if limit < need {
		return fmt.Errorf("%d minions need about %d file descriptors; RLIMIT_NOFILE allows %d (raise the hard limit: ulimit -Hn as root, LimitNOFILE=)",
			cfg.count, need, limit)
	}
	if cfg.exec == "fork" && limit < need+fdsPerFork*n {
		log.Warn("RLIMIT_NOFILE may be too low to fork a command on every minion at once; commands beyond it fail with EMFILE",
			"limit", limit, "want", need+fdsPerFork*n)
	}
	return nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// it. (Go's os package does the same at start since Go 1.19; the swarm does
// it itself so that it can check the result against what it needs.)
func raiseNoFile() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	return uint64(lim.Cur), nil // int64 on the BSDs
}

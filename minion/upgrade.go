package minion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/daemon/selfupdate"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/version"
)

// ErrSameVersion is Upgrade's answer when the staged binary's version is
// the running one: nothing is changed.
var ErrSameVersion = errors.New("already at that version")

// ErrRolledBack is HandOver's error when the new binary failed and the old
// one was restored: the caller starts the old one again (cmdStart execs it
// in place, same pid).
var ErrRolledBack = errors.New("upgrade rolled back")

const (
	// upgradeFile in the data directory records the last self-upgrade
	// (model.LastUpgrade), reported with every registration.
	upgradeFile = "upgrade.json"
	// readyFile holds "PID VERSION" once the minion registered (the health
	// that restart and update wait for).
	readyFile = "minion.ready"
	// handoverFDEnv tells a new binary started by HandOver which file
	// descriptor to write "ok" to once it has registered with the master.
	handoverFDEnv = "FELIX_MINION_HANDOVER_FD"
	// UpgradeDeadlineEnv overrides UpgradeDeadline (a Go duration) in the
	// process that watches the handover; meant for tests.
	UpgradeDeadlineEnv = "FELIX_MINION_UPGRADE_DEADLINE"
)

// UpgradeDeadline is how long the old process waits for the new one to
// reach the master before it kills it and restores the old binary.
const UpgradeDeadline = 60 * time.Second

// handoverDelay lets Upgrade's caller (an RPC) answer before Run stops.
const handoverDelay = time.Second

// handover is an upgrade swapped in and waiting for Run to stop.
type handover struct {
	from, to string
}

// Upgrade replaces this minion's binary by the executable at staged (a file
// inside the minion's data directory, already fully written and fsynced by
// the caller). It checks the file first — an executable for this
// GOOS/GOARCH (its header, before running it), its sha256 equal to
// wantSHA256, and `staged version` answering within 10 s — and returns an
// error (nothing swapped, staged removed) when a check fails. When the
// staged binary's version is the running one it returns (current version,
// ErrSameVersion) and changes nothing. Otherwise it swaps atomically (the
// current binary kept as PATH.prev) and returns (new version, nil) at once;
// a second later Run stops (draining) and the caller of Run hands over with
// HandOver: the old process starts the new binary and watches it.
func (m *Minion) Upgrade(ctx context.Context, staged, wantSHA256 string) (newVersion string, err error) {
	defer os.Remove(staged)
	if !m.upgrading.CompareAndSwap(false, true) {
		return "", fmt.Errorf("upgrade: another upgrade is in progress")
	}
	handingOver := false
	defer func() {
		if !handingOver {
			m.upgrading.Store(false)
		}
	}()
	if m.exe == "" {
		return "", fmt.Errorf("upgrade: the minion's own binary is unknown")
	}
	if wantSHA256 == "" {
		return "", fmt.Errorf("upgrade: no sha256 given for %s", staged)
	}
	c, err := selfupdate.Check(ctx, staged, runtime.GOOS, runtime.GOARCH, wantSHA256)
	if err != nil {
		return "", fmt.Errorf("upgrade: %w", err)
	}
	running := version.String()
	if c.Version == running {
		return running, ErrSameVersion
	}
	if err := selfupdate.Install(m.exe, c); err != nil {
		return "", fmt.Errorf("upgrade: %w", err)
	}
	m.log.Info("upgrade: new binary installed; handing over", "from", running, "to", c.Version,
		"binary", m.exe, "sha256", c.SHA256, "kept", selfupdate.Prev(m.exe))
	m.mu.Lock()
	m.pending = &handover{from: running, to: c.Version}
	stop := m.stop
	m.mu.Unlock()
	handingOver = true
	if stop != nil {
		time.AfterFunc(handoverDelay, stop)
	}
	return c.Version, nil
}

// Handover reports whether an upgrade waits to be handed over: then Run
// returned because of it, and the caller calls HandOver.
func (m *Minion) Handover() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending != nil
}

// upgradeDeadline is UpgradeDeadline or what UpgradeDeadlineEnv says.
func upgradeDeadline() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(UpgradeDeadlineEnv)); err == nil && d > 0 {
		return d
	}
	return UpgradeDeadline
}

// HandOver starts the new binary (installed by Upgrade) with this
// process's arguments and environment and watches it: it returns nil once
// the new process reports that it registered with the master (over the
// pinned TLS connection) — the caller then exits and leaves the minion to
// it. If the new process exits first, or has not reported within
// UpgradeDeadline, HandOver kills it, restores the old binary and returns
// an error wrapping ErrRolledBack: the caller starts the old binary again.
// The caller must have released what the new process takes at start (the
// pid file, the data-directory lock) before calling it. When ctx ends
// (the watchdog is told to stop), the new process gets SIGTERM and HandOver
// returns ctx's error once it exited.
func (m *Minion) HandOver(ctx context.Context) error {
	m.mu.Lock()
	h := m.pending
	m.mu.Unlock()
	if h == nil {
		return fmt.Errorf("hand over: no upgrade pending")
	}
	rec := model.LastUpgrade{From: h.from, To: h.to, State: model.UpgradeUpgrading, At: time.Now().UTC()}
	if err := m.writeUpgrade(rec); err != nil {
		m.log.Warn("hand over: record the upgrade", "err", err)
	}
	deadline := upgradeDeadline()
	reason := m.watchNew(ctx, deadline)
	if reason == "" {
		m.log.Info("hand over: the new binary reached the master; exiting", "version", h.to)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.log.Error("hand over: the new binary failed; restoring the old one", "version", h.to, "reason", reason)
	if err := selfupdate.Rollback(m.exe); err != nil {
		reason += "; restoring the old binary failed: " + err.Error()
	}
	if len(reason) > 1000 { // the master takes at most 1024 bytes
		reason = reason[:1000] + "…"
	}
	rec.State, rec.Reason = model.UpgradeRolledBack, reason
	if err := m.writeUpgrade(rec); err != nil {
		m.log.Warn("hand over: record the rollback", "err", err)
	}
	return fmt.Errorf("%w: %s", ErrRolledBack, reason)
}

// watchNew starts the new binary and waits for its "ok"; it returns ""
// on success, else why it failed.
func (m *Minion) watchNew(ctx context.Context, deadline time.Duration) string {
	r, w, err := os.Pipe()
	if err != nil {
		return "create the handover pipe: " + err.Error()
	}
	defer r.Close()
	cmd := exec.Command(m.exe, m.args...)
	// WATCHDOG_PID names this process: without it the new one pets
	// systemd's watchdog itself (NotifyAccess=all in the unit).
	cmd.Env = append(withoutEnv(os.Environ(), handoverFDEnv, "WATCHDOG_PID"), handoverFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, m.childOut(os.Stdout), m.childOut(os.Stderr)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "start the new binary: " + err.Error()
	}
	m.log.Info("hand over: new binary started", "pid", cmd.Process.Pid, "deadline", deadline)
	okc := make(chan bool, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 64))
		okc <- strings.TrimSpace(string(b)) == "ok"
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	kill := func() { cmd.Process.Kill(); <-exited }
	select {
	case ok := <-okc:
		if ok {
			// Under systemd the new process becomes the service's main
			// process before this one exits, else its exit would end the
			// service and take the new process with it.
			m.notifySystemd(fmt.Sprintf("MAINPID=%d\nSTATUS=handed over to the new binary", cmd.Process.Pid))
			return ""
		}
		// The pipe closed without "ok": the new process is exiting.
		select {
		case err := <-exited:
			return fmt.Sprintf("the new binary exited before reaching the master: %v", err)
		case <-timer.C:
			kill()
			return fmt.Sprintf("the new binary closed the handover pipe and did not exit within %s", deadline)
		}
	case err := <-exited:
		return fmt.Sprintf("the new binary exited before reaching the master: %v", err)
	case <-timer.C:
		kill()
		return fmt.Sprintf("the new binary did not reach the master within %s", deadline)
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		return "stopped while handing over"
	}
}

// childOut is where the new binary's output goes: this process's own
// stdout/stderr, or the test's writers.
func (m *Minion) childOut(f *os.File) io.Writer {
	if m.handoverOut != nil {
		return m.handoverOut
	}
	return f
}

// withoutEnv is env without the variables names.
func withoutEnv(env []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(e string) bool {
		name, _, _ := strings.Cut(e, "=")
		return slices.Contains(names, name)
	})
}

// takeHandoverPipe picks up the pipe to the old process when this one was
// started by HandOver; it is written "ok" once registered (reportJoined).
func takeHandoverPipe() *os.File {
	s := os.Getenv(handoverFDEnv)
	if s == "" {
		return nil
	}
	os.Unsetenv(handoverFDEnv) // not passed on to commands or a later handover
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return nil
	}
	closeOnExec(fd)
	return os.NewFile(uintptr(fd), "handover")
}

// reportJoined tells the old process (if any) that this one reached the
// master, and records an upgrade to this version as done.
func (m *Minion) reportJoined() {
	if rec, ok := m.readUpgrade(); ok && rec.State == model.UpgradeUpgrading {
		if err := m.writeUpgrade(m.outcome(rec)); err != nil {
			m.log.Warn("record the upgrade", "err", err)
		}
	}
	if m.exe != "" {
		if err := daemon.WriteReady(filepath.Join(m.cfg.DataDir, readyFile), version.String()); err != nil {
			m.log.Warn("registered, but", "err", err)
		}
	}
	m.mu.Lock()
	p := m.handoverPipe
	m.handoverPipe = nil
	m.mu.Unlock()
	if p != nil {
		if _, err := p.WriteString("ok\n"); err != nil {
			m.log.Warn("hand over: tell the old process", "err", err)
		}
		p.Close()
	}
}

// outcome turns an upgrade record still "upgrading" into what it means for
// this process: upgraded when it runs the new version, else rolled back
// (the old binary runs again: the watchdog was killed before it could say).
func (m *Minion) outcome(rec model.LastUpgrade) model.LastUpgrade {
	if rec.State != model.UpgradeUpgrading {
		return rec
	}
	if version.String() == rec.To {
		rec.State = model.UpgradeUpgraded
	} else {
		rec.State = model.UpgradeRolledBack
		rec.Reason = "the minion started again at " + version.String() + " before the upgrade finished"
	}
	return rec
}

// lastUpgrade is what a registration reports: nil if the minion never
// upgraded itself.
func (m *Minion) lastUpgrade() *model.LastUpgrade {
	rec, ok := m.readUpgrade()
	if !ok {
		return nil
	}
	rec = m.outcome(rec)
	return &rec
}

func (m *Minion) readUpgrade() (model.LastUpgrade, bool) {
	var rec model.LastUpgrade
	b, err := os.ReadFile(filepath.Join(m.cfg.DataDir, upgradeFile))
	if err != nil {
		return rec, false
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.State == "" {
		m.log.Warn("unreadable upgrade record", "file", upgradeFile, "err", err)
		return rec, false
	}
	return rec, true
}

func (m *Minion) writeUpgrade(rec model.LastUpgrade) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(m.cfg.DataDir, upgradeFile), append(b, '\n'), 0o600)
}

// ownBinary is the minion's executable with symlinks resolved: the file an
// upgrade replaces.
func ownBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return exe
}

package bootstrap

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
)

// Upgrade upgrades the minion a bootstrap installed on t's host, over SSH:
// the fleet upgrade's path for a host that has no minion answering over
// gRPC but SSH settings in the agentless inventory. pick chooses the
// binary for the host's OS and architecture (as the probe finds them).
//
// It is a bootstrap rerun (the steps of the package comment, on the same
// SSH connection) with that binary instead of the minion directory's:
//
//   - Nothing is written before the probe, the pinned certificate check
//     (t's fingerprint, when it has one, must be the one on the host: the
//     minion keeps its key) and the inventory check passed; a host without
//     a minion binary is refused (felix bootstrap installs one).
//   - The same binary (by sha256): outcome unchanged, nothing replaced;
//     the rest of the rerun still repairs a stopped minion or a changed
//     config.
//   - Otherwise the installed binary is kept as BIN.prev (as a minion's
//     self-update keeps it), the new one uploaded atomically and the
//     minion restarted; upgraded once it registered again with the new
//     binary's version and the host's certificate, within half of what is
//     left of ctx's deadline (the bootstrap timeout without one).
//   - When it does not (or anything after the swap fails), BIN.prev is put
//     back, the minion restarted and its registration with the old
//     version awaited: outcome rolled_back, with the reason (the minion's
//     last log lines), and an error.
//
// An error before anything was replaced says "nothing changed" and wraps
// the transport's error (exec.ErrUnreachable for a host SSH cannot
// reach); the report's Outcome is then "".
func (b *Bootstrapper) Upgrade(ctx context.Context, t model.Target, pick func(goos, goarch string) (model.UpgradeBinary, error)) (model.UpgradeReport, error) {
	var rep model.UpgradeReport
	hosts, err := b.hostIndex(ctx)
	if err != nil {
		return rep, err
	}
	r := &Result{Host: hostName(t)}
	h, err := b.newHostRun(t, hosts, r)
	if err != nil {
		return rep, err
	}
	if err := h.probe(ctx); err != nil {
		return rep, fmt.Errorf("%w (nothing changed)", err)
	}
	if !h.pr.Bin {
		return rep, fmt.Errorf("no felix minion on %s (install one with felix bootstrap); nothing changed", r.Host)
	}
	if t.Fingerprint != "" && h.hostFP != t.Fingerprint {
		return rep, fmt.Errorf("the minion certificate on %s is %q, not the pinned %s; nothing changed", r.Host, h.hostFP, t.Fingerprint)
	}
	bin, err := pick(h.osName, r.Arch)
	if err != nil {
		return rep, fmt.Errorf("%w; nothing changed", err)
	}
	h.local, h.sum, h.open = bin.Name, bin.SHA256, bin.Open
	if err := h.checkInventory(ctx); err != nil {
		return rep, fmt.Errorf("%w; nothing changed", err)
	}
	if err := h.reach(ctx); err != nil {
		return rep, fmt.Errorf("%w; nothing changed", err)
	}
	rep.From, rep.To = h.pr.BinVersion, h.pr.BinVersion
	start := time.Now()
	if h.pr.BinSHA256 != h.sum {
		rep.To = "sha256:" + h.sum[:min(12, len(h.sum))] // its version once it is on the host
	}
	if h.pr.BinSHA256 == h.sum {
		// The same binary: the rest of a rerun, which repairs what is off.
		for _, step := range []func(context.Context) error{h.install, h.start, h.verify} {
			if err := step(ctx); err != nil {
				return rep, err
			}
		}
		rep.Outcome = model.OutcomeUnchanged
		if h.action() == ActionRepaired {
			rep.Detail = "repaired: " + h.repairs()
		}
		return rep, nil
	}
	if err := h.run(ctx, "keep the old binary", h.p.script(markKeep, keepBody)); err != nil {
		return rep, fmt.Errorf("%w; nothing changed", err)
	}
	if err := h.swap(ctx, &rep); err != nil {
		return rep, h.rollback(ctx, &rep, err)
	}
	rep.Outcome, rep.To = model.OutcomeUpgraded, h.m.Version
	b.log().Info("upgraded over ssh", "host", r.Host, "id", r.ID, "from", rep.From, "to", rep.To,
		"fingerprint", r.Fingerprint, "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// swap installs the new binary (and whatever else a rerun fixes),
// restarts the minion and waits for it to register with the new version.
func (h *hostRun) swap(ctx context.Context, rep *model.UpgradeReport) error {
	if err := h.install(ctx); err != nil {
		return err
	}
	// What was uploaded, and the version it answers: read as the probe
	// reads the installed binary.
	out, errOut, code, err := h.b.SSH.Run(ctx, h.t, h.p.script(markProbe, probeBody))
	if err != nil || code != 0 {
		return fmt.Errorf("probe the new binary: exit status %d: %v %s", code, err, lastLine(errOut))
	}
	pr := parseProbe(out)
	if pr.BinSHA256 != h.sum {
		return fmt.Errorf("the binary on the host has sha256 %q after the upload, not %s", pr.BinSHA256, h.sum)
	}
	if pr.BinVersion == "" {
		return fmt.Errorf("the new binary %s does not answer `version`", h.local)
	}
	rep.To = pr.BinVersion
	window := h.b.timeout()
	if d, ok := ctx.Deadline(); ok {
		window = time.Until(d) / 2
	}
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	h.want, h.window = pr.BinVersion, window.Round(time.Second)
	if err := h.start(wctx); err != nil {
		return err
	}
	return h.verify(wctx)
}

// minRollback is the least time a rollback gets, past the caller's
// deadline if need be: a host is not left on a binary that does not come up.
const minRollback = 30 * time.Second

// rollback puts BIN.prev back after a failed swap (cause), restarts the
// minion and waits for it to register with the old version, within what
// is left of ctx's deadline but at least minRollback, even when ctx has
// ended (the bootstrap timeout without a deadline). It returns the host's
// error.
func (h *hostRun) rollback(ctx context.Context, rep *model.UpgradeReport, cause error) error {
	reason := cause.Error()
	d := h.b.timeout()
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), minRollback)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	h.b.log().Warn("upgrade over ssh failed; rolling back", "host", h.r.Host, "id", h.r.ID, "from", rep.From, "to", rep.To, "reason", reason)
	if err := h.run(ctx, "restore the old binary", h.p.script(markRestore, restoreBody)); err != nil {
		return fmt.Errorf("%s; the rollback failed: %w", reason, err)
	}
	h.binChanged, h.want, h.window = true, rep.From, 0 // restart it, on the old version
	if err := h.start(ctx); err != nil {
		return fmt.Errorf("%s; the old binary is back but did not start: %w", reason, err)
	}
	if err := h.verify(ctx); err != nil {
		return fmt.Errorf("%s; the old binary is back but: %w", reason, err)
	}
	rep.Outcome, rep.Detail = model.OutcomeRolledBack, reason
	return fmt.Errorf("rolled back to %s: %s", rep.From, reason)
}

// repairs says what a rerun with the same binary fixed.
func (h *hostRun) repairs() string {
	var s []string
	if h.cfgChanged {
		s = append(s, "config rewritten")
	}
	if h.unitChanged {
		s = append(s, "unit rewritten")
	}
	if h.started {
		s = append(s, "minion started")
	}
	if h.booted {
		s = append(s, "boot entry added")
	}
	if len(s) == 0 {
		return "minion accepted"
	}
	return strings.Join(s, ", ")
}

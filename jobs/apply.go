package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/state"
)

// checkApply checks an apply job's spec (CmdType apply with Apply, whose
// document state.Parse accepts) and sets its command line, which names the
// job in lists: "apply web@3 --dry-run". Other jobs pass unless they carry
// an apply spec.
func checkApply(spec *model.JobSpec) error {
	if spec.Apply == nil {
		if spec.CmdType == model.CmdApply {
			return invalid{errors.New("an apply job needs its document")}
		}
		return nil
	}
	if spec.CmdType != model.CmdApply || spec.IsTransfer() || spec.HasPayload() || spec.Packages != nil {
		return invalid{errors.New("an apply job is cmd_type apply, without a command, file, transfer or packages")}
	}
	if _, err := state.Parse([]byte(spec.Apply.Document)); err != nil {
		return invalid{fmt.Errorf("state document %s: %w", spec.Apply.Name(), err)}
	}
	spec.CmdLine = "apply " + spec.Apply.Name()
	if spec.Apply.DryRun {
		spec.CmdLine += " --dry-run"
	}
	return nil
}

// checkApplyTargets checks that every vars block's match is a target
// expression Resolve reads.
func (s *Service) checkApplyTargets(ctx context.Context, spec *model.JobSpec) error {
	if spec.Apply == nil {
		return nil
	}
	d, err := state.Parse([]byte(spec.Apply.Document))
	if err != nil {
		return invalid{err}
	}
	_, err = s.varsSelections(ctx, d)
	return err
}

// varsSelections resolves each vars block's match (target patterns,
// comma-separated) to the ids it selects now.
func (s *Service) varsSelections(ctx context.Context, d *state.Doc) ([]map[string]bool, error) {
	out := make([]map[string]bool, len(d.Vars))
	for i, b := range d.Vars {
		out[i] = map[string]bool{}
		ts, err := s.Resolve(ctx, strings.Split(b.Match, ","))
		switch {
		case errors.Is(err, ErrBadTarget):
			return nil, invalid{fmt.Errorf("vars block %d: match %q: %w", i+1, b.Match, err)}
		case errors.Is(err, ErrNoTargets):
			continue
		case err != nil:
			return nil, fmt.Errorf("vars block %d: %w", i+1, err)
		}
		for _, t := range ts {
			if t.Skip != model.StateUnknown {
				out[i][t.ID] = true
			}
		}
	}
	return out, nil
}

// applyCommand is what the transports get for an apply job: the spec and
// a renderer that fills in each host's facts, labels and variables when
// the host's turn comes (so memory holds one rendered host per running
// host, never the fleet's).
func (s *Service) applyCommand(ctx context.Context, spec model.JobSpec) (model.Command, error) {
	d, err := state.Parse([]byte(spec.Apply.Document))
	if err != nil {
		return model.Command{}, err
	}
	sel, err := s.varsSelections(ctx, d)
	if err != nil {
		return model.Command{}, err
	}
	render := func(ctx context.Context, t model.Target) ([]model.Resource, error) {
		h, err := s.hostData(ctx, t)
		if err != nil {
			return nil, err
		}
		return d.Render(h, d.VarsFor(func(i int) bool { return sel[i][t.ID] }))
	}
	return model.Command{Timeout: spec.Timeout, Apply: &model.Apply{Spec: spec.Apply, Render: render, Content: s.openContent}}, nil
}

// openContent opens stored content for a file's source.
func (s *Service) openContent(sha string) (io.ReadCloser, int64, error) {
	if s.Content == nil {
		return nil, 0, errors.New("the master has no content store")
	}
	f, b, err := s.Content.Open(sha)
	if err != nil {
		return nil, 0, err
	}
	return f, b.Size, nil
}

// holdSources holds the stored content an apply's files name while its job
// runs: content the store does not have is refused before anything is
// stored.
func (s *Service) holdSources(a *model.ApplySpec) (func(), error) {
	d, err := state.Parse([]byte(a.Document))
	if err != nil {
		return nil, invalid{err}
	}
	shas := d.Sources()
	if len(shas) == 0 {
		return func() {}, nil
	}
	if s.Content == nil {
		return nil, errors.New("the master has no content store")
	}
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, sha := range shas {
		_, rel, err := s.Content.Hold(sha)
		if err != nil {
			release()
			if errors.Is(err, content.ErrNotFound) {
				return nil, fmt.Errorf("%w: source sha256:%s (upload it with POST /api/v1/content)", ErrNoContent, sha)
			}
			return nil, err
		}
		releases = append(releases, rel)
	}
	return release, nil
}

// hostData is what a template knows of t: its minion's facts (or those
// gathered from its SSH host), its labels
// (the host's, the minion's over them) and its address.
func (s *Service) hostData(ctx context.Context, t model.Target) (state.Host, error) {
	h := state.Host{ID: t.ID, Facts: map[string]any{}, Labels: map[string]string{}}
	if host, err := s.Store.Host(ctx, t.ID); err == nil {
		h.Addr = host.Address
		maps.Copy(h.Labels, host.Labels)
		// Facts gathered over SSH; a minion's own facts go over them.
		if host.Facts.JSON != "" {
			if err := json.Unmarshal([]byte(host.Facts.JSON), &h.Facts); err != nil {
				return h, fmt.Errorf("read %s's facts: %w", t.ID, err)
			}
		}
	} else if !errors.Is(err, inventory.ErrNotFound) {
		return h, fmt.Errorf("read host %s: %w", t.ID, err)
	}
	if m, err := s.Store.Minion(ctx, t.ID); err == nil {
		if h.Addr == "" {
			h.Addr = m.Addr
		}
		maps.Copy(h.Labels, m.Labels)
		if m.Facts != "" {
			if err := json.Unmarshal([]byte(m.Facts), &h.Facts); err != nil {
				return h, fmt.Errorf("read %s's facts: %w", t.ID, err)
			}
		}
	} else if !errors.Is(err, inventory.ErrNotFound) {
		return h, fmt.Errorf("read minion %s: %w", t.ID, err)
	}
	return h, nil
}

package jobs

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/model"
)

// ErrInvalid marks a file or package job the service refuses as
// malformed; the error's text is the reason alone.
var ErrInvalid = errors.New("invalid job")

// invalid is a reason wrapped so that errors.Is(err, ErrInvalid) holds.
type invalid struct{ error }

func (e invalid) Unwrap() []error { return []error{e.error, ErrInvalid} }

// ErrNoContent is returned for a push naming content the master does not
// store.
var ErrNoContent = errors.New("content not in the master's store")

// checkPush checks a push's shape: the destination, and entries whose
// parents come before them. The store is not consulted.
func checkPush(p *model.PushSpec) error {
	if err := model.CheckHostPath(p.Dest); err != nil {
		return fmt.Errorf("dest: %w", err)
	}
	if len(p.Entries) == 0 {
		return errors.New("nothing to push")
	}
	seen := make(map[string]model.FileKind, len(p.Entries))
	for i, e := range p.Entries {
		if err := model.CheckEntryPath(e.Path); err != nil {
			return err
		}
		if (i == 0) != (e.Path == ".") {
			return fmt.Errorf("entry %q: the first entry, and only it, is \".\" (the destination itself)", e.Path)
		}
		if _, dup := seen[e.Path]; dup {
			return fmt.Errorf("entry %q appears twice", e.Path)
		}
		if i > 0 {
			if k, ok := seen[path.Dir(e.Path)]; !ok || k != model.KindDir {
				return fmt.Errorf("entry %q: its directory %q must be a dir entry before it", e.Path, path.Dir(e.Path))
			}
		}
		seen[e.Path] = e.Kind
		if e.Mode&^0o7777 != 0 {
			return fmt.Errorf("entry %q: mode %#o has bits beyond 07777", e.Path, e.Mode)
		}
		switch e.Kind {
		case model.KindFile:
			if !content.ValidSHA(e.SHA256) {
				return fmt.Errorf("entry %q: sha256 %q is not 64 lower-case hex digits", e.Path, e.SHA256)
			}
		case model.KindDir:
			if e.SHA256 != "" || e.Link != "" {
				return fmt.Errorf("entry %q: a dir has no sha256 or link", e.Path)
			}
		case model.KindSymlink:
			if e.Link == "" || strings.ContainsRune(e.Link, 0) || e.SHA256 != "" || e.Mode != 0 {
				return fmt.Errorf("entry %q: a symlink has a link target (no NUL) and no sha256 or mode", e.Path)
			}
		default:
			return fmt.Errorf("entry %q: unknown kind %v", e.Path, e.Kind)
		}
	}
	return nil
}

// holdContent checks that every file of a push is in the store, fills in
// sizes, and holds the content so garbage collection leaves it alone
// while the job runs; the returned function releases it.
func (s *Service) holdContent(p *model.PushSpec) (func(), error) {
	if s.Content == nil {
		return nil, errors.New("the master has no content store")
	}
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		if e.Kind != model.KindFile {
			continue
		}
		b, rel, err := s.Content.Hold(e.SHA256)
		if err != nil {
			release()
			if errors.Is(err, content.ErrNotFound) {
				return nil, fmt.Errorf("%w: sha256 %s (upload it with POST /api/v1/content)", ErrNoContent, e.SHA256)
			}
			return nil, err
		}
		releases = append(releases, rel)
		e.Size = b.Size
	}
	return release, nil
}

// verifyContent hashes a push's content in the store again after hosts
// failed: content damaged on the master's disk fails every host's
// verification, and is removed so that the next upload stores it afresh.
func (s *Service) verifyContent(jobID string, p *model.PushSpec) {
	seen := map[string]bool{}
	for _, e := range p.Entries {
		if e.Kind != model.KindFile || seen[e.SHA256] {
			continue
		}
		seen[e.SHA256] = true
		ok, err := s.Content.Verify(e.SHA256)
		switch {
		case err != nil && !errors.Is(err, content.ErrNotFound):
			s.Log.Warn("verify pushed content", "job", jobID, "sha256", e.SHA256, "err", err)
		case err == nil && !ok:
			s.Log.Error("pushed content was damaged on the master's disk and is removed; upload it again",
				"job", jobID, "sha256", e.SHA256)
		}
	}
}

// transferCommand builds the exec command of a file job.
func (s *Service) transferCommand(spec model.JobSpec) model.Command {
	cmd := model.Command{Timeout: spec.Timeout}
	if p := spec.Push; p != nil {
		push := &model.Push{Dest: p.Dest, Owner: p.Owner, Mkdir: p.Mkdir, Backup: p.Backup,
			FollowSymlinks: p.FollowSymlinks, Entries: make([]model.PushEntry, len(p.Entries))}
		for i, e := range p.Entries {
			pe := model.PushEntry{Rel: e.Path, Kind: e.Kind, Mode: e.Mode, Size: e.Size, SHA256: e.SHA256, Link: e.Link}
			if e.Kind == model.KindFile {
				sum := e.SHA256
				pe.Open = func() (io.ReadCloser, error) {
					f, _, err := s.Content.Open(sum)
					return f, err
				}
			}
			push.Entries[i] = pe
		}
		cmd.Push = push
	}
	if f := spec.Fetch; f != nil {
		cmd.Fetch = &model.Fetch{Path: f.Path, FollowSymlinks: f.FollowSymlinks, Sink: func(string) (model.FetchSink, error) {
			w, err := s.Content.Create()
			if err != nil {
				return nil, err
			}
			return fetchSink{w}, nil
		}}
	}
	return cmd
}

// fetchSink stores one host's fetched copy in the content store.
type fetchSink struct{ w *content.Writer }

func (f fetchSink) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f fetchSink) Commit(size int64, sum string) error {
	_, err := f.w.Commit(size, sum)
	return err
}

func (f fetchSink) Abort() { f.w.Abort() }

// checkFiles checks a file job's spec, fills in a push's sizes and holds
// its content in the store until the returned function is called.
func (s *Service) checkFiles(spec *model.JobSpec) (release func(), err error) {
	switch {
	case spec.Push != nil && spec.Fetch == nil:
		if err := checkPush(spec.Push); err != nil {
			return nil, invalid{err}
		}
		return s.holdContent(spec.Push)
	case spec.Fetch != nil && spec.Push == nil:
		if err := model.CheckHostPath(spec.Fetch.Path); err != nil {
			return nil, invalid{fmt.Errorf("path: %w", err)}
		}
		if s.Content == nil {
			return nil, errors.New("the master has no content store")
		}
		return func() {}, nil
	}
	return nil, invalid{errors.New("a file job is a push or a fetch")}
}

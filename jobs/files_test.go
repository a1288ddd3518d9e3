package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestCheckPush(t *testing.T) {
	sum := sumOf([]byte("x"))
	dir := func(p string) model.EntrySpec { return model.EntrySpec{Path: p, Kind: model.KindDir} }
	file := func(p string) model.EntrySpec { return model.EntrySpec{Path: p, Kind: model.KindFile, SHA256: sum} }
	link := func(p, to string) model.EntrySpec { return model.EntrySpec{Path: p, Kind: model.KindSymlink, Link: to} }
	with := func(e model.EntrySpec, edit func(*model.EntrySpec)) model.EntrySpec { edit(&e); return e }
	tests := []struct {
		name    string
		dest    string
		entries []model.EntrySpec
		want    string // substring of the error; "" for valid
	}{
		{"single file", "/etc/x", []model.EntrySpec{file(".")}, ""},
		{"single file with setuid mode", "/usr/local/bin/x", []model.EntrySpec{with(file("."), func(e *model.EntrySpec) { e.Mode = 0o4755 })}, ""},
		{"single dir", "/srv/app", []model.EntrySpec{dir(".")}, ""},
		{"single symlink", "/etc/alt", []model.EntrySpec{link(".", "/etc/real")}, ""},
		{"tree", "/srv/app", []model.EntrySpec{dir("."), file("a"), dir("d"), dir("d/e"), file("d/e/f"), link("d/l", "../a"),
			with(dir("x"), func(e *model.EntrySpec) { e.Mode = 0o1777 })}, ""},
		{"tree with an odd but clean name", "/srv/app", []model.EntrySpec{dir("."), file("..a")}, ""},

		{"relative dest", "srv/app", []model.EntrySpec{file(".")}, "dest: path \"srv/app\" is not absolute"},
		{"dest with ..", "/srv/../app", []model.EntrySpec{file(".")}, "dest: path \"/srv/../app\" is not clean"},
		{"dest root", "/", []model.EntrySpec{dir(".")}, "dest: path / names no file"},
		{"dest empty", "", []model.EntrySpec{file(".")}, "dest: empty path"},
		{"dest with NUL", "/a\x00", []model.EntrySpec{file(".")}, "dest: path \"/a\\x00\" contains NUL"},
		{"no entries", "/srv/app", nil, "nothing to push"},
		{"first entry not .", "/srv/app", []model.EntrySpec{file("a")}, "the first entry, and only it"},
		{". later", "/srv/app", []model.EntrySpec{dir("."), dir(".")}, "the first entry, and only it"},
		{"duplicate", "/srv/app", []model.EntrySpec{dir("."), dir("d"), dir("d")}, `entry "d" appears twice`},
		{"duplicate of another kind", "/srv/app", []model.EntrySpec{dir("."), file("d"), dir("d")}, `entry "d" appears twice`},
		{"child before its dir", "/srv/app", []model.EntrySpec{dir("."), file("d/f"), dir("d")}, `entry "d/f": its directory "d" must be a dir entry before it`},
		{"child without its dir", "/srv/app", []model.EntrySpec{dir("."), file("d/e/f"), dir("d")}, `its directory "d/e"`},
		{"child of a file", "/srv/app", []model.EntrySpec{dir("."), file("f"), file("f/g")}, `its directory "f" must be a dir entry`},
		{"child of a symlink", "/srv/app", []model.EntrySpec{dir("."), link("l", "/etc"), file("l/passwd")}, `its directory "l" must be a dir entry`},
		{"tree under a file", "/srv/app", []model.EntrySpec{file("."), file("a")}, `its directory "." must be a dir entry`},
		{"path ..", "/srv/app", []model.EntrySpec{dir("."), file("../x")}, "inside the destination"},
		{"path absolute", "/srv/app", []model.EntrySpec{dir("."), file("/etc/passwd")}, "inside the destination"},
		{"path not clean", "/srv/app", []model.EntrySpec{dir("."), dir("a"), file("a/../b")}, "inside the destination"},
		{"path empty", "/srv/app", []model.EntrySpec{dir("."), file("")}, "empty or contains NUL"},
		{"mode beyond 07777", "/srv/app", []model.EntrySpec{with(file("."), func(e *model.EntrySpec) { e.Mode = 0o10644 })}, "bits beyond 07777"},
		{"file without sha256", "/etc/x", []model.EntrySpec{{Path: ".", Kind: model.KindFile}}, `sha256 "" is not 64 lower-case hex digits`},
		{"file with upper-case sha256", "/etc/x", []model.EntrySpec{with(file("."), func(e *model.EntrySpec) { e.SHA256 = strings.ToUpper(sum) })}, "lower-case hex"},
		{"file with short sha256", "/etc/x", []model.EntrySpec{with(file("."), func(e *model.EntrySpec) { e.SHA256 = sum[:63] })}, "lower-case hex"},
		{"dir with sha256", "/srv", []model.EntrySpec{with(dir("."), func(e *model.EntrySpec) { e.SHA256 = sum })}, "a dir has no sha256 or link"},
		{"dir with link", "/srv", []model.EntrySpec{with(dir("."), func(e *model.EntrySpec) { e.Link = "x" })}, "a dir has no sha256 or link"},
		{"symlink without link", "/srv/app", []model.EntrySpec{dir("."), link("l", "")}, "a symlink has a link target"},
		{"symlink link with NUL", "/srv/app", []model.EntrySpec{dir("."), link("l", "a\x00b")}, "a symlink has a link target"},
		{"symlink with sha256", "/srv/app", []model.EntrySpec{dir("."), with(link("l", "x"), func(e *model.EntrySpec) { e.SHA256 = sum })}, "no sha256 or mode"},
		{"symlink with mode", "/srv/app", []model.EntrySpec{dir("."), with(link("l", "x"), func(e *model.EntrySpec) { e.Mode = 0o777 })}, "no sha256 or mode"},
		{"unknown kind", "/srv/app", []model.EntrySpec{dir("."), {Path: "p", Kind: model.FileKind(9)}}, "unknown kind kind(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPush(&model.PushSpec{Dest: tt.dest, Entries: tt.entries})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkPush = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkPush = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// fileHosts is a minion that keeps no files: an exec.Transport whose
// transfers reach put and get (exec.FileTransport) through the selecting
// transport. A nil put reports every entry changed; a nil get sends
// "PATH on HOST".
type fileHosts struct {
	put func(ctx context.Context, t model.Target, p model.PutFile) (model.PutResult, error)
	get func(ctx context.Context, t model.Target, path string, w io.Writer) (int64, string, error)

	mu   sync.Mutex // protects puts
	puts []model.PutFile
}

var (
	_ exec.Transport     = (*fileHosts)(nil)
	_ exec.FileTransport = (*fileHosts)(nil)
)

func (f *fileHosts) Name() string { return "fake" }

func (f *fileHosts) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	return model.Exit{Code: -1}, fmt.Errorf("fileHosts: asked to run %q on %s", cmd.Line, t.ID)
}

func (f *fileHosts) Put(ctx context.Context, t model.Target, p model.PutFile) (model.PutResult, error) {
	f.mu.Lock()
	f.puts = append(f.puts, p)
	f.mu.Unlock()
	if f.put == nil {
		return model.PutResult{Changed: true}, nil
	}
	return f.put(ctx, t, p)
}

func (f *fileHosts) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	path := g.Path
	if f.get != nil {
		return f.get(ctx, t, path, w)
	}
	b := []byte(path + " on " + t.ID)
	n, err := w.Write(b)
	return int64(n), sumOf(b), err
}

// newFileService returns a Service whose hosts are fh and whose content
// store, under t.TempDir(), counts blobs unused after a millisecond as
// garbage.
func newFileService(t *testing.T, fh *fileHosts) *Service {
	t.Helper()
	s := newService(t, &transport.Select{Agent: fh})
	cs, err := content.Open(filepath.Join(t.TempDir(), "content"), content.Options{MaxFileSize: 1 << 20, KeepUnused: time.Millisecond})
	if err != nil {
		t.Fatalf("content.Open = %v", err)
	}
	s.Content = cs
	return s
}

// put stores b in s's content store and returns its sha256.
func putBlob(t *testing.T, s *Service, b []byte) string {
	t.Helper()
	blob, err := s.Content.Put(bytes.NewReader(b), "")
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	return blob.SHA256
}

// collect runs GC as if an hour had passed: only held blobs survive.
func collectAll(t *testing.T, s *Service) int {
	t.Helper()
	n, _, err := s.Content.GC(time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("GC = %v", err)
	}
	return n
}

func isStored(s *Service, sum string) bool {
	_, err := s.Content.Stat(sum)
	return err == nil
}

// refused checks that Submit and DryRun refuse spec with want, and that
// no job was stored.
func refused(t *testing.T, s *Service, spec model.JobSpec, want error) {
	t.Helper()
	jobs := jobCount(t, s)
	if _, err := s.Submit(context.Background(), spec, ""); !errors.Is(err, want) {
		t.Errorf("Submit = %v; want %v", err, want)
	}
	if _, err := s.DryRun(context.Background(), spec); !errors.Is(err, want) {
		t.Errorf("DryRun = %v; want %v", err, want)
	}
	if n := jobCount(t, s); n != jobs {
		t.Errorf("%d jobs stored; want none", n-jobs)
	}
}

func jobCount(t *testing.T, s *Service) int {
	t.Helper()
	list, err := s.Store.Jobs(context.Background(), inventory.JobFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("Jobs = %v", err)
	}
	return len(list)
}

func TestHoldContent(t *testing.T) {
	s := newFileService(t, &fileHosts{})
	a, b := []byte("alpha\n"), []byte("beta, longer\n")
	sa, sb := putBlob(t, s, a), putBlob(t, s, b)
	missing := sumOf([]byte("never stored"))

	// A missing blob fails the hold and releases the ones already held.
	spec := &model.PushSpec{Dest: "/srv", Entries: []model.EntrySpec{{Path: ".", Kind: model.KindDir},
		{Path: "a", Kind: model.KindFile, SHA256: sa}, {Path: "b", Kind: model.KindFile, SHA256: sb},
		{Path: "m", Kind: model.KindFile, SHA256: missing}}}
	if _, err := s.holdContent(spec); !errors.Is(err, ErrNoContent) || !strings.Contains(err.Error(), missing) ||
		!strings.Contains(err.Error(), "POST /api/v1/content") {
		t.Fatalf("holdContent(missing blob) = %v; want ErrNoContent naming %s and POST /api/v1/content", err, missing)
	}
	if n := collectAll(t, s); n != 2 || isStored(s, sa) || isStored(s, sb) {
		t.Errorf("after a failed hold GC removed %d blobs; want both (nothing stays held)", n)
	}

	// Held blobs survive GC until released; sizes are filled in.
	sa, sb = putBlob(t, s, a), putBlob(t, s, b)
	spec = &model.PushSpec{Dest: "/srv", Entries: []model.EntrySpec{{Path: ".", Kind: model.KindDir},
		{Path: "a", Kind: model.KindFile, SHA256: sa}, {Path: "b", Kind: model.KindFile, SHA256: sb},
		{Path: "a2", Kind: model.KindFile, SHA256: sa}, {Path: "l", Kind: model.KindSymlink, Link: "a"}}}
	release, err := s.holdContent(spec)
	if err != nil {
		t.Fatalf("holdContent = %v", err)
	}
	if got := []int64{spec.Entries[0].Size, spec.Entries[1].Size, spec.Entries[2].Size, spec.Entries[3].Size, spec.Entries[4].Size}; got[0] != 0 ||
		got[1] != int64(len(a)) || got[2] != int64(len(b)) || got[3] != int64(len(a)) || got[4] != 0 {
		t.Errorf("sizes = %v; want [0 %d %d %d 0]", got, len(a), len(b), len(a))
	}
	if n := collectAll(t, s); n != 0 || !isStored(s, sa) || !isStored(s, sb) {
		t.Errorf("GC removed %d held blobs; want 0", n)
	}
	release()
	release() // twice is harmless
	if n := collectAll(t, s); n != 2 {
		t.Errorf("GC after release removed %d blobs; want 2", n)
	}

	s.Content = nil
	if _, err := s.holdContent(&model.PushSpec{Dest: "/x", Entries: []model.EntrySpec{{Path: ".", Kind: model.KindFile, SHA256: sa}}}); err == nil ||
		!strings.Contains(err.Error(), "no content store") {
		t.Errorf("holdContent without a store = %v; want an error", err)
	}
}

// TestPushHoldsContentWhileRunning runs a push whose host blocks: its
// content survives GC while the job runs and is collectable after.
func TestPushHoldsContentWhileRunning(t *testing.T) {
	g := newGate(1)
	fh := &fileHosts{put: func(ctx context.Context, tg model.Target, p model.PutFile) (model.PutResult, error) {
		if !g.wait(ctx, tg.ID) {
			return model.PutResult{}, ctx.Err()
		}
		rc, err := p.Open()
		if err != nil {
			return model.PutResult{}, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || int64(len(b)) != p.Size || sumOf(b) != p.SHA256 {
			return model.PutResult{}, fmt.Errorf("content %q (%v) does not match size %d sha256 %s", b, err, p.Size, p.SHA256)
		}
		return model.PutResult{Changed: true}, nil
	}}
	s := newFileService(t, fh)
	data := []byte("held while the job runs\n")
	sum := putBlob(t, s, data)
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: model.CmdPush, CmdLine: "push /etc/x", Targets: []string{"web1"},
		Push: &model.PushSpec{Dest: "/etc/x", Entries: []model.EntrySpec{{Path: ".", Kind: model.KindFile, SHA256: sum}}}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	select {
	case <-g.entered:
	case <-time.After(time.Minute):
		t.Fatal("the host was never asked to put")
	}
	if n := collectAll(t, s); n != 0 || !isStored(s, sum) {
		t.Fatalf("GC during the job removed %d blobs; want the held content kept", n)
	}
	close(g.release)
	_, rs := waitJob(t, s, job.ID)
	if states(rs) != "web1=ok" || rs[0].Files == nil || *rs[0].Files != (model.FileReport{Changed: 1, Size: int64(len(data)), SHA256: sum}) {
		t.Fatalf("results %s %+v (%s); want web1 ok, 1 changed", states(rs), rs[0].Files, rs[0].Error)
	}
	if n := collectAll(t, s); n != 1 || isStored(s, sum) {
		t.Errorf("GC after the job removed %d blobs; want the released content", n)
	}

	// Its content gone, the push cannot be repeated.
	_, err = s.Rerun(context.Background(), job.ID, false)
	if !errors.Is(err, ErrNoContent) || !errors.Is(err, inventory.ErrConflict) {
		t.Errorf("Rerun after GC = %v; want ErrNoContent and ErrConflict", err)
	}
}

// TestSubmitFilesRefused checks that a refused file job stores no job and
// asks no host for anything.
func TestSubmitFilesRefused(t *testing.T) {
	fh := &fileHosts{}
	s := newFileService(t, fh)
	sum := putBlob(t, s, []byte("x"))
	missing := sumOf([]byte("never stored"))
	single := func(dest, sha string) *model.PushSpec {
		return &model.PushSpec{Dest: dest, Entries: []model.EntrySpec{{Path: ".", Kind: model.KindFile, SHA256: sha}}}
	}
	tests := []struct {
		name string
		spec model.JobSpec
		want error
	}{
		{"bad dest", model.JobSpec{Targets: []string{"web1"}, Push: single("etc/x", sum)}, ErrInvalid},
		{"bad entry", model.JobSpec{Targets: []string{"web1"}, Push: &model.PushSpec{Dest: "/srv", Entries: []model.EntrySpec{
			{Path: ".", Kind: model.KindDir}, {Path: "../x", Kind: model.KindFile, SHA256: sum}}}}, ErrInvalid},
		{"missing content", model.JobSpec{Targets: []string{"web1"}, Push: single("/etc/x", missing)}, ErrNoContent},
		{"push and fetch", model.JobSpec{Targets: []string{"web1"}, Push: single("/etc/x", sum), Fetch: &model.FetchSpec{Path: "/etc/x"}}, ErrInvalid},
		{"bad fetch path", model.JobSpec{Targets: []string{"web1"}, Fetch: &model.FetchSpec{Path: "/etc/../x"}}, ErrInvalid},
		{"targets match nothing", model.JobSpec{Targets: []string{"zzz*"}, Push: single("/etc/x", sum)}, ErrNoTargets},
		{"bad transport", model.JobSpec{Targets: []string{"web1"}, Transport: "rsh", Fetch: &model.FetchSpec{Path: "/etc/x"}}, ErrBadTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refused(t, s, tt.spec, tt.want) })
	}
	// Nothing was held by the refused jobs: the blob is collectable.
	if n := collectAll(t, s); n != 1 {
		t.Errorf("GC removed %d blobs; want the one no job holds", n)
	}
	if len(fh.puts) != 0 {
		t.Errorf("hosts got %d puts; want none", len(fh.puts))
	}

	s.Content = nil
	if _, err := s.Submit(context.Background(), model.JobSpec{Targets: []string{"web1"}, Fetch: &model.FetchSpec{Path: "/etc/x"}}, ""); err == nil ||
		!strings.Contains(err.Error(), "no content store") {
		t.Errorf("fetch without a content store = %v; want an error", err)
	}
}

func TestFetchStoresCopies(t *testing.T) {
	s := newFileService(t, &fileHosts{})
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: model.CmdFetch, CmdLine: "fetch /etc/hostname",
		Targets: []string{"web1", "web2"}, Fetch: &model.FetchSpec{Path: "/etc/hostname"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	_, rs := waitJob(t, s, job.ID)
	if got := states(rs); got != "web1=ok web2=ok" {
		t.Fatalf("states %s; want both ok", got)
	}
	for _, r := range rs {
		data := []byte("/etc/hostname on " + r.Host)
		want := model.FileReport{Size: int64(len(data)), SHA256: sumOf(data)}
		if r.Files == nil || *r.Files != want {
			t.Errorf("%s: files %+v; want %+v", r.Host, r.Files, want)
			continue
		}
		if b, err := s.Content.Stat(want.SHA256); err != nil || b.Size != want.Size {
			t.Errorf("Stat(copy of %s) = %+v, %v; want %d bytes stored", r.Host, b, err, want.Size)
		}
	}
}

func TestFetchAbortedStoresNothing(t *testing.T) {
	part := []byte("the first half of a file")
	tests := []struct {
		name string
		get  func(ctx context.Context, tg model.Target, path string, w io.Writer) (int64, string, error)
		want string // in the host's error
	}{
		{"broken after a part", func(ctx context.Context, tg model.Target, path string, w io.Writer) (int64, string, error) {
			n, _ := w.Write(part)
			return int64(n), "", fmt.Errorf("get %s from %s: stream broken", path, tg.ID)
		}, "stream broken"},
		{"sha256 not as announced", func(ctx context.Context, tg model.Target, path string, w io.Writer) (int64, string, error) {
			n, _ := w.Write(part)
			return int64(n), sumOf([]byte("something else")), nil
		}, "mismatch"},
		{"size not as announced", func(ctx context.Context, tg model.Target, path string, w io.Writer) (int64, string, error) {
			n, _ := w.Write(part)
			return int64(n) + 1, sumOf(part), nil
		}, "mismatch"},
		{"over the size limit", func(ctx context.Context, tg model.Target, path string, w io.Writer) (int64, string, error) {
			big := bytes.Repeat([]byte("x"), 64<<10)
			var total int64
			for range 20 { // 1.25 MiB > the store's 1 MiB
				n, err := w.Write(big)
				total += int64(n)
				if err != nil {
					return total, "", fmt.Errorf("get %s from %s: %w", path, tg.ID, err)
				}
			}
			return total, "", nil
		}, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileService(t, &fileHosts{get: tt.get})
			job, err := s.Submit(context.Background(), model.JobSpec{CmdType: model.CmdFetch, CmdLine: "fetch /var/log/x",
				Targets: []string{"web1"}, Fetch: &model.FetchSpec{Path: "/var/log/x"}}, "")
			if err != nil {
				t.Fatalf("Submit = %v", err)
			}
			_, rs := waitJob(t, s, job.ID)
			if states(rs) != "web1=failed" || !strings.Contains(rs[0].Error, tt.want) || rs[0].Files != nil {
				t.Errorf("result %s %q files %+v; want web1 failed mentioning %q, no files", states(rs), rs[0].Error, rs[0].Files, tt.want)
			}
			if n, size := s.Content.Usage(); n != 0 || size != 0 {
				t.Errorf("store holds %d blobs of %d bytes; want none", n, size)
			}
			if isStored(s, sumOf(part)) {
				t.Errorf("the partial copy was stored")
			}
			tmp, err := os.ReadDir(filepath.Join(s.Content.Dir(), "tmp"))
			if err != nil || len(tmp) != 0 {
				t.Errorf("temporary files %v (%v); want none", tmp, err)
			}
		})
	}
}

// TestPushTransferCommand checks the exec command built for a push: each
// entry as given, files opened from the store.
func TestPushTransferCommand(t *testing.T) {
	s := newFileService(t, &fileHosts{})
	data := []byte("content\n")
	sum := putBlob(t, s, data)
	spec := model.JobSpec{Timeout: time.Minute, Push: &model.PushSpec{Dest: "/srv", Owner: "a:b", Mkdir: true, Backup: true, FollowSymlinks: true,
		Entries: []model.EntrySpec{{Path: ".", Kind: model.KindDir, Mode: 0o750}, {Path: "f", Kind: model.KindFile, SHA256: sum, Size: 8, Mode: 0o600},
			{Path: "l", Kind: model.KindSymlink, Link: "f"}}}}
	cmd := s.transferCommand(spec)
	p := cmd.Push
	if p == nil || cmd.Fetch != nil || cmd.Line != "" || cmd.Timeout != time.Minute || !cmd.IsTransfer() {
		t.Fatalf("command = %+v; want a push only, with the timeout", cmd)
	}
	if p.Dest != "/srv" || p.Owner != "a:b" || !p.Mkdir || !p.Backup || !p.FollowSymlinks || len(p.Entries) != 3 {
		t.Fatalf("push = %+v; want the spec's fields", p)
	}
	for i, e := range p.Entries {
		want := spec.Push.Entries[i]
		if e.Rel != want.Path || e.Kind != want.Kind || e.Mode != want.Mode || e.SHA256 != want.SHA256 || e.Size != want.Size || e.Link != want.Link {
			t.Errorf("entry %d = %+v; want %+v", i, e, want)
		}
		if (e.Open != nil) != (e.Kind == model.KindFile) {
			t.Errorf("entry %d: Open set %v; want only for files", i, e.Open != nil)
		}
	}
	rc, err := p.Entries[1].Open()
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, data) {
		t.Errorf("Open read %q, %v; want %q", b, err, data)
	}
}

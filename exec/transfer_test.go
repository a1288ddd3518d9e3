package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/model"
)

// fakeFiles is a FileTransport over a map; fail names the Dest whose put
// fails with failErr.
type fakeFiles struct {
	mu      sync.Mutex
	have    map[string]string // dest → sha256 or kind
	puts    []model.PutFile
	fail    string
	failErr error
	content string // what Get returns
}

func (f *fakeFiles) Put(ctx context.Context, t model.Target, p model.PutFile) (model.PutResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, p)
	if p.Dest == f.fail {
		return model.PutResult{}, f.failErr
	}
	want := p.SHA256 + p.Kind.String() + p.Link
	if f.have[p.Dest] == want {
		return model.PutResult{}, nil
	}
	f.have[p.Dest] = want
	return model.PutResult{Changed: true, Backup: map[bool]string{true: p.Dest + ".bak"}[p.Backup]}, nil
}

func (f *fakeFiles) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	if g.Path == f.fail {
		return 0, "", f.failErr
	}
	n, err := io.WriteString(w, f.content)
	return int64(n), "sum-of-" + f.content, err
}

type sink struct {
	bytes.Buffer
	committed, aborted bool
	failCommit         error
}

func (s *sink) Commit(size int64, sum string) error { s.committed = true; return s.failCommit }
func (s *sink) Abort()                              { s.aborted = true }

func tree() *model.Push {
	return &model.Push{Dest: "/srv/app", Mkdir: true, Owner: "1:1", Backup: true, Entries: []model.PushEntry{
		{Rel: ".", Kind: model.KindDir, Mode: 0o755},
		{Rel: "a.conf", Kind: model.KindFile, Size: 3, SHA256: "aa", Mode: 0o644},
		{Rel: "sub", Kind: model.KindDir},
		{Rel: "sub/link", Kind: model.KindSymlink, Link: "../a.conf"},
	}}
}

func TestTransferPush(t *testing.T) {
	ft := &fakeFiles{have: map[string]string{"/srv/app/sub": "dir"}}
	var out bytes.Buffer
	collect := func(s model.Stream, p []byte) { out.Write(p) }
	exit, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, collect)
	if err != nil || exit.Code != 0 {
		t.Fatalf("Transfer = %+v, %v", exit, err)
	}
	if got := *exit.Files; got != (model.FileReport{Changed: 3, Unchanged: 1, Size: 3}) {
		t.Errorf("report = %+v", got)
	}
	// Only the tree's top gets Mkdir; everything below is confined to it.
	for _, p := range ft.puts {
		top := p.Dest == "/srv/app"
		if p.Mkdir != top || (p.Root == "") != top || p.Owner != "1:1" || !p.Backup {
			t.Errorf("put %s: Mkdir %v Root %q Owner %q Backup %v", p.Dest, p.Mkdir, p.Root, p.Owner, p.Backup)
		}
	}
	for _, want := range []string{"changed /srv/app\n", "changed /srv/app/a.conf\n", "backup /srv/app/a.conf.bak\n", "changed /srv/app/sub/link\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
	// Again: nothing changes.
	exit, err = Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, collect)
	if err != nil || exit.Files.Changed != 0 || exit.Files.Unchanged != 4 {
		t.Fatalf("second Transfer = %+v %+v, %v", exit, exit.Files, err)
	}
}

func TestTransferPushFailures(t *testing.T) {
	unreachable := fmt.Errorf("dial: %w", ErrUnreachable)
	tests := []struct {
		name    string
		fail    string
		failErr error
		wantUnr bool
		want    string
	}{
		{"first put unreachable: nothing sent", "/srv/app", unreachable, true, "dial"},
		{"later put unreachable: no longer nothing sent", "/srv/app/sub", unreachable, false, "(1 changed, 1 unchanged before it)"},
		{"a failing entry stops the push", "/srv/app/a.conf", errors.New("disk full"), false, "disk full (1 changed, 0 unchanged before it)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeFiles{have: map[string]string{"/srv/app/a.conf": "aafile"}, fail: tc.fail, failErr: tc.failErr}
			if tc.fail == "/srv/app/a.conf" {
				ft.have = map[string]string{}
			}
			exit, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrUnreachable) != tc.wantUnr || exit.Code == 0 {
				t.Fatalf("Transfer = %+v, %v", exit, err)
			}
			if ft.puts[len(ft.puts)-1].Dest != tc.fail {
				t.Errorf("puts went on after the failure: %+v", ft.puts)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Transfer(ctx, &fakeFiles{have: map[string]string{}}, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled push: %v", err)
	}
}

func TestTransferFetch(t *testing.T) {
	var got *sink
	f := &model.Fetch{Path: "/etc/motd", Sink: func(host string) (model.FetchSink, error) {
		got = &sink{}
		return got, nil
	}}
	exit, err := Transfer(context.Background(), &fakeFiles{content: "hello"}, model.Target{ID: "web1"}, model.Command{Fetch: f}, nil)
	if err != nil || exit.Code != 0 || *exit.Files != (model.FileReport{Size: 5, SHA256: "sum-of-hello"}) {
		t.Fatalf("Transfer = %+v, %v", exit, err)
	}
	if got.String() != "hello" || !got.committed || got.aborted {
		t.Errorf("sink = %q committed %v aborted %v", got.String(), got.committed, got.aborted)
	}
	// A failed read aborts the sink; a failed commit is an error.
	_, err = Transfer(context.Background(), &fakeFiles{fail: "/etc/motd", failErr: errors.New("no such file")}, model.Target{ID: "web1"}, model.Command{Fetch: f}, nil)
	if err == nil || !got.aborted || got.committed {
		t.Errorf("failed get: %v, sink %+v", err, got)
	}
	f.Sink = func(string) (model.FetchSink, error) {
		got = &sink{failCommit: errors.New("store full")}
		return got, nil
	}
	if _, err := Transfer(context.Background(), &fakeFiles{content: "x"}, model.Target{ID: "web1"}, model.Command{Fetch: f}, nil); err == nil || !strings.Contains(err.Error(), "store full") {
		t.Errorf("failed commit: %v", err)
	}
	if _, err := Transfer(context.Background(), &fakeFiles{}, model.Target{ID: "web1"}, model.Command{}, nil); err == nil {
		t.Error("neither push nor fetch: no error")
	}
}

// batchFiles is fakeFiles with PutBatch, which Transfer must prefer.
type batchFiles struct {
	fakeFiles
	batches int
	err     error // returned by PutBatch after the files
}

func (b *batchFiles) PutBatch(ctx context.Context, t model.Target, files []model.PutFile, done func(int, model.PutResult, error) bool) error {
	b.batches++
	for i, f := range files {
		res, err := b.Put(ctx, t, f)
		if !done(i, res, err) {
			return nil
		}
	}
	return b.err
}

func TestTransferPushBatch(t *testing.T) {
	ft := &batchFiles{fakeFiles: fakeFiles{have: map[string]string{}}}
	exit, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil)
	if err != nil || exit.Code != 0 || exit.Files.Changed != 4 || ft.batches != 1 || len(ft.puts) != 4 {
		t.Fatalf("Transfer = %+v %+v, %v; batches %d, puts %d", exit, exit.Files, err, ft.batches, len(ft.puts))
	}
	// A failing entry stops the batch; the rest are not put.
	ft = &batchFiles{fakeFiles: fakeFiles{have: map[string]string{}, fail: "/srv/app/a.conf", failErr: errors.New("disk full")}}
	if _, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil); err == nil ||
		!strings.Contains(err.Error(), "disk full (1 changed, 0 unchanged before it)") || len(ft.puts) != 2 {
		t.Errorf("failing entry: %v, %d puts", err, len(ft.puts))
	}
	// The batch cannot reach the host: unreachable, nothing counted.
	ft = &batchFiles{fakeFiles: fakeFiles{have: map[string]string{}, fail: "/srv/app", failErr: fmt.Errorf("dial: %w", ErrUnreachable)}}
	if _, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("unreachable batch: %v", err)
	}
	// The batch ends early (ctx) after some entries: an error naming the counts.
	ft = &batchFiles{fakeFiles: fakeFiles{have: map[string]string{}}, err: context.Canceled}
	if _, err := Transfer(context.Background(), ft, model.Target{ID: "web1"}, model.Command{Push: tree()}, nil); !errors.Is(err, context.Canceled) ||
		!strings.Contains(err.Error(), "after 4 changed") {
		t.Errorf("batch error after entries: %v", err)
	}
}

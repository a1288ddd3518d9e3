package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

// fileTransport is a minion that keeps files in memory. It is an
// exec.Transport whose transfers reach its Put and Get (exec.FileTransport)
// through the selecting transport, as on the master, and it records every
// call.
type fileTransport struct {
	mu   sync.Mutex
	puts []putCall         // guarded by mu
	gets []string          // "host path"; guarded by mu
	have map[string]string // "host dest" → what is there; guarded by mu
}

// putCall is one Put: the file asked for and what its Open yielded.
type putCall struct {
	Host    string
	File    model.PutFile
	Content []byte
}

var (
	_ exec.Transport     = (*fileTransport)(nil)
	_ exec.FileTransport = (*fileTransport)(nil)
)

func newFileTransport() *fileTransport { return &fileTransport{have: map[string]string{}} }

func (f *fileTransport) Name() string { return "fake" }

// Exec runs no commands: the file routes must never ask for one.
func (f *fileTransport) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	return model.Exit{Code: -1}, fmt.Errorf("fileTransport: asked to run %q on %s", cmd.Line, t.ID)
}

// Put places p in memory; a host that has the same entry already reports
// it unchanged.
func (f *fileTransport) Put(ctx context.Context, t model.Target, p model.PutFile) (model.PutResult, error) {
	call := putCall{Host: t.ID, File: p}
	if p.Kind == model.KindFile {
		if p.Open == nil {
			return model.PutResult{}, fmt.Errorf("put %s on %s: a file without Open", p.Dest, t.ID)
		}
		rc, err := p.Open()
		if err != nil {
			return model.PutResult{}, fmt.Errorf("put %s on %s: %w", p.Dest, t.ID, err)
		}
		call.Content, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return model.PutResult{}, fmt.Errorf("put %s on %s: %w", p.Dest, t.ID, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, call)
	key, want := t.ID+" "+p.Dest, fmt.Sprintf("%s %s %s %o %s", p.Kind, p.SHA256, p.Link, p.Mode, p.Owner)
	old, existed := f.have[key]
	if old == want {
		return model.PutResult{}, nil
	}
	f.have[key] = want
	res := model.PutResult{Changed: true}
	if existed && p.Backup {
		res.Backup = p.Dest + ".bak"
	}
	return res, nil
}

// Get sends fetchedContent(host, path).
func (f *fileTransport) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	path := g.Path
	f.mu.Lock()
	f.gets = append(f.gets, t.ID+" "+path)
	f.mu.Unlock()
	b := fetchedContent(t.ID, path)
	n, err := w.Write(b)
	if err != nil {
		return int64(n), "", fmt.Errorf("get %s from %s: %w", path, t.ID, err)
	}
	return int64(n), blobSum(b), nil
}

func (f *fileTransport) Puts() []putCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.puts)
}

func (f *fileTransport) Gets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gets)
}

// fetchedContent is what the fake hosts hold at path: different per host.
func fetchedContent(host, path string) []byte {
	return []byte(fmt.Sprintf("%s as kept on %s\n", path, host))
}

func blobSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// describePut shows a put's fields that matter, for comparing sequences.
func describePut(c putCall) string {
	p := c.File
	return fmt.Sprintf("%s %s %s mode=%o size=%d sha=%s link=%q root=%q mkdir=%v owner=%q backup=%v follow=%v content=%q",
		c.Host, p.Kind, p.Dest, p.Mode, p.Size, p.SHA256, p.Link, p.Root, p.Mkdir, p.Owner, p.Backup, p.FollowSymlinks, c.Content)
}

// filesHarness is the API harness with a content store wired into the
// server and the job service, and hosts that keep files in memory.
type filesHarness struct {
	*harness
	content *content.Store
	files   *fileTransport
}

// filesMaxSize is the content store's per-blob limit in these tests.
const filesMaxSize = 64 << 10

func newFilesHarness(t *testing.T) *filesHarness {
	t.Helper()
	ft := newFileTransport()
	h := newHarnessWith(t, &transport.Select{Agent: ft}, true)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	h.addMinion("web2", "127.0.0.10:4510", true, nil)
	return &filesHarness{harness: h, content: h.content, files: ft}
}

// send sends body as is with its content type ("" for none) and auth as
// the Authorization header ("" for none).
func (h *filesHarness) send(method, path, ctype, auth string, body []byte) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.client(nil).Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, out
}

// upload stores b through POST /api/v1/content and returns its sha256.
func (h *filesHarness) upload(b []byte) string {
	h.t.Helper()
	sum := blobSum(b)
	resp, out := h.send("POST", "/api/v1/content?sha256="+sum, "application/octet-stream", "Bearer "+h.admin, b)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		h.t.Fatalf("POST /api/v1/content = %d %s; want 201 or 200", resp.StatusCode, out)
	}
	var blob wire.Blob
	if err := json.Unmarshal(out, &blob); err != nil || blob != (wire.Blob{SHA256: sum, Size: int64(len(b))}) {
		h.t.Fatalf("POST /api/v1/content = %s (%v); want the blob %s of %d bytes", out, err, sum, len(b))
	}
	return sum
}

// blobs lists every file in the content store's directory, temporary
// uploads included, with their sizes.
func (h *filesHarness) blobs() string {
	h.t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(h.content.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.content.Dir(), p)
		fmt.Fprintf(&sb, "%s %d\n", rel, info.Size())
		return nil
	})
	if err != nil {
		h.t.Fatalf("list the content store: %v", err)
	}
	return sb.String()
}

// stored describes everything stored: the database, the payloads and the
// content store.
func (h *filesHarness) stored() string {
	h.t.Helper()
	return h.dump() + "content:\n" + h.blobs()
}

// wantNothingStored fails when anything stored differs from before, or
// when the hosts were asked for anything since calls.
func (h *filesHarness) wantNothingStored(what, before string, puts, gets int) {
	h.t.Helper()
	if after := h.stored(); after != before {
		h.t.Errorf("%s changed what is stored:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
	if n := len(h.files.Puts()); n != puts {
		h.t.Errorf("%s: hosts got %d puts; want none", what, n-puts)
	}
	if n := len(h.files.Gets()); n != gets {
		h.t.Errorf("%s: hosts got %d gets; want none", what, n-gets)
	}
}

// pushMultipart POSTs a multipart push to /api/v1/files.
func (h *filesHarness) pushMultipart(req any, file []byte, query string) (int, []byte) {
	h.t.Helper()
	ctype, body := multipartBody(h.t, req, file)
	resp, out := h.send("POST", "/api/v1/files"+query, ctype, "Bearer "+h.admin, body)
	return resp.StatusCode, out
}

func onHosts(ids ...string) wire.JobOptions { return wire.JobOptions{Targets: ids} }

func TestFilesBadInput(t *testing.T) {
	h := newFilesHarness(t)
	sum := h.upload([]byte("stored content\n"))
	unknown := blobSum([]byte("never uploaded"))
	web := onHosts("web1")
	dir := wire.PushEntry{Path: ".", Kind: model.KindDir.String()}
	file := func(p string) wire.PushEntry {
		return wire.PushEntry{Path: p, Kind: model.KindFile.String(), SHA256: sum}
	}
	tree := func(es ...wire.PushEntry) wire.PushRequest {
		return wire.PushRequest{JobOptions: web, Dest: "/srv/app", Entries: es}
	}
	one := func(dest string) wire.PushRequest { return wire.PushRequest{JobOptions: web, Dest: dest, SHA256: sum} }
	tests := []struct {
		name   string
		path   string
		body   any // JSON of it, or a string as is
		status int
		want   []string // substrings of the error
	}{
		{"dest relative", "/api/v1/files", one("etc/x"), 400, []string{"dest", "not absolute"}},
		{"dest with ..", "/api/v1/files", one("/etc/../x"), 400, []string{"dest", "not clean"}},
		{"dest with NUL", "/api/v1/files", one("/etc/a\x00b"), 400, []string{"dest", "NUL"}},
		{"dest root", "/api/v1/files", one("/"), 400, []string{"dest", "names no file"}},
		{"dest empty", "/api/v1/files", one(""), 400, []string{"dest", "empty"}},
		{"dest doubled slash", "/api/v1/files", one("/etc//x"), 400, []string{"dest", "not clean"}},
		{"dest trailing slash", "/api/v1/files", one("/etc/x/"), 400, []string{"dest", "not clean"}},
		{"dest with .", "/api/v1/files", one("/etc/./x"), 400, []string{"dest", "not clean"}},
		{"unknown sha256", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: unknown}, 400,
			[]string{unknown, "POST /api/v1/content"}},
		{"unknown sha256 in a dry run", "/api/v1/files?dry_run=true", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: unknown}, 400,
			[]string{unknown, "POST /api/v1/content"}},
		{"bad sha256", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: "xyz"}, 400,
			[]string{"xyz", "64 lower-case hex"}},
		{"upper-case sha256", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: strings.ToUpper(sum)}, 400,
			[]string{"64 lower-case hex"}},
		{"mode 999", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Mode: "999"}, 400,
			[]string{"mode", "999"}},
		{"mode abc", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Mode: "abc"}, 400,
			[]string{"mode", "abc"}},
		{"mode over 07777", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Mode: "17777"}, 400,
			[]string{"mode"}},
		{"owner with ;", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Owner: "root;rm"}, 400,
			[]string{"owner", "root;rm"}},
		{"owner colon only", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Owner: ":"}, 400,
			[]string{"owner"}},
		{"owner starting with -", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x", SHA256: sum, Owner: "-r:x"}, 400,
			[]string{"owner"}},
		{"entry ../x", "/api/v1/files", tree(dir, file("../x")), 400, []string{"../x", "inside the destination"}},
		{"entry absolute", "/api/v1/files", tree(dir, file("/abs")), 400, []string{"/abs", "inside the destination"}},
		{"entry a/../b", "/api/v1/files", tree(dir, wire.PushEntry{Path: "a", Kind: model.KindDir.String()}, file("a/../b")), 400,
			[]string{"a/../b", "clean relative path"}},
		{"entry with NUL", "/api/v1/files", tree(dir, file("a\x00b")), 400, []string{"NUL"}},
		{"entry empty", "/api/v1/files", tree(dir, file("")), 400, []string{"empty"}},
		{"entry twice", "/api/v1/files", tree(dir, file("a"), file("a")), 400, []string{`"a"`, "twice"}},
		{"child before its dir", "/api/v1/files", tree(dir, file("sub/a"), wire.PushEntry{Path: "sub", Kind: model.KindDir.String()}), 400,
			[]string{"sub/a", `directory "sub"`, "before it"}},
		{"child of a file", "/api/v1/files", tree(dir, file("a"), file("a/b")), 400, []string{"a/b", "dir entry before it"}},
		{"first entry not .", "/api/v1/files", tree(file("a")), 400, []string{"first entry"}},
		{". twice", "/api/v1/files", tree(dir, dir), 400, []string{"first entry"}},
		{"symlink without link", "/api/v1/files", tree(dir, wire.PushEntry{Path: "l", Kind: model.KindSymlink.String()}), 400,
			[]string{`"l"`, "link target"}},
		{"symlink with mode", "/api/v1/files", tree(dir, wire.PushEntry{Path: "l", Kind: model.KindSymlink.String(), Link: "x", Mode: "0644"}), 400,
			[]string{`"l"`, "no sha256 or mode"}},
		{"dir with sha256", "/api/v1/files", tree(dir, wire.PushEntry{Path: "d", Kind: model.KindDir.String(), SHA256: sum}), 400,
			[]string{`"d"`, "a dir has no sha256"}},
		{"file without sha256", "/api/v1/files", tree(dir, wire.PushEntry{Path: "f", Kind: model.KindFile.String()}), 400,
			[]string{`"f"`, "sha256"}},
		{"file with a bad sha256", "/api/v1/files", tree(dir, wire.PushEntry{Path: "f", Kind: model.KindFile.String(), SHA256: "xyz"}), 400,
			[]string{`"f"`, "xyz"}},
		{"file with unknown sha256", "/api/v1/files", tree(dir, wire.PushEntry{Path: "f", Kind: model.KindFile.String(), SHA256: unknown}), 400,
			[]string{unknown, "POST /api/v1/content"}},
		{"entry mode abc", "/api/v1/files", tree(dir, wire.PushEntry{Path: "f", Kind: model.KindFile.String(), SHA256: sum, Mode: "abc"}), 400,
			[]string{`"f"`, "mode"}},
		{"unknown kind", "/api/v1/files", tree(dir, wire.PushEntry{Path: "p", Kind: "fifo"}), 400, []string{"fifo", "want file, dir or symlink"}},
		{"entries and mode", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/srv/app", Mode: "0644", Entries: []wire.PushEntry{dir}}, 400,
			[]string{"entries"}},
		{"entries and sha256", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/srv/app", SHA256: sum, Entries: []wire.PushEntry{dir}}, 400,
			[]string{"entries"}},
		{"no content", "/api/v1/files", wire.PushRequest{JobOptions: web, Dest: "/etc/x"}, 400, []string{"no content", "POST /api/v1/content"}},
		{"unknown field", "/api/v1/files", `{"targets":["web1"],"dest":"/etc/x","sha256":"` + sum + `","md5":"x"}`, 400,
			[]string{"unknown field", "md5"}},
		{"no targets", "/api/v1/files", wire.PushRequest{Dest: "/etc/x", SHA256: sum}, 400, []string{"no targets"}},
		{"empty targets", "/api/v1/files", `{"targets":[],"dest":"/etc/x","sha256":"` + sum + `"}`, 400, []string{"no targets"}},
		{"targets match nothing", "/api/v1/files", wire.PushRequest{JobOptions: onHosts("zzz*"), Dest: "/etc/x", SHA256: sum}, 404,
			[]string{"zzz*"}},
		{"bad timeout", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}, Timeout: "soon"}, Dest: "/etc/x", SHA256: sum}, 400,
			[]string{"timeout"}},
		{"bad transport", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}, Transport: "rsh"}, Dest: "/etc/x", SHA256: sum}, 400,
			[]string{"rsh"}},
		{"bad dry_run", "/api/v1/files?dry_run=maybe", one("/etc/x"), 400, []string{"dry_run"}},
		{"malformed JSON", "/api/v1/files", `{"dest": `, 400, []string{"malformed JSON"}},

		{"fetch relative", "/api/v1/fetch", wire.FetchRequest{JobOptions: web, Path: "etc/x"}, 400, []string{"path", "not absolute"}},
		{"fetch with ..", "/api/v1/fetch", wire.FetchRequest{JobOptions: web, Path: "/etc/../x"}, 400, []string{"path", "not clean"}},
		{"fetch with NUL", "/api/v1/fetch", wire.FetchRequest{JobOptions: web, Path: "/etc/a\x00b"}, 400, []string{"path", "NUL"}},
		{"fetch root", "/api/v1/fetch", wire.FetchRequest{JobOptions: web, Path: "/"}, 400, []string{"path"}},
		{"fetch empty", "/api/v1/fetch", wire.FetchRequest{JobOptions: web}, 400, []string{"path", "empty"}},
		{"fetch unknown field", "/api/v1/fetch", `{"targets":["web1"],"path":"/etc/x","dest":"/tmp"}`, 400, []string{"unknown field", "dest"}},
		{"fetch no targets", "/api/v1/fetch", wire.FetchRequest{Path: "/etc/x"}, 400, []string{"no targets"}},
		{"fetch dry run, no targets", "/api/v1/fetch?dry_run=true", wire.FetchRequest{Path: "/etc/x"}, 400, []string{"no targets"}},
		{"fetch targets match nothing", "/api/v1/fetch", wire.FetchRequest{JobOptions: onHosts("zzz*"), Path: "/etc/x"}, 404, []string{"zzz*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			puts, gets := len(h.files.Puts()), len(h.files.Gets())
			status, out := h.do(h.client(nil), "POST", tt.path, "Bearer "+h.admin, tt.body)
			if status != tt.status {
				t.Errorf("POST %s = %d %s; want %d", tt.path, status, out, tt.status)
			}
			wantError(t, tt.name, out, tt.want...)
			h.wantNothingStored(tt.name, before, puts, gets)
		})
	}
}

// TestFilesMultipartBadInput checks multipart pushes: the request part is
// checked before the file part is stored, so a refused request leaves
// neither a job nor content.
func TestFilesMultipartBadInput(t *testing.T) {
	h := newFilesHarness(t)
	sum := h.upload([]byte("stored content\n"))
	data := []byte("multipart content\n")
	tests := []struct {
		name   string
		req    any
		file   []byte
		status int
		want   []string
	}{
		{"sha256 and a file part", wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/etc/x", SHA256: sum}, data, 400,
			[]string{"once"}},
		{"entries and a file part", wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/srv/app",
			Entries: []wire.PushEntry{{Path: ".", Kind: model.KindDir.String()}}}, data, 400, []string{"entries"}},
		{"bad dest", wire.PushRequest{JobOptions: onHosts("web1"), Dest: "etc/x"}, data, 400, []string{"dest", "not absolute"}},
		{"no file part", wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/etc/x"}, nil, 400, []string{"no file part"}},
		{"no request part", nil, data, 400, []string{"request part must come before"}},
		{"unknown field in the request part", `{"targets":["web1"],"dest":"/etc/x","nope":1}`, data, 400,
			[]string{"malformed JSON", "nope"}},
		{"over the size limit", wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/etc/x"},
			bytes.Repeat([]byte("x"), filesMaxSize+1), 413, []string{"too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			blobs := h.blobs()
			puts := len(h.files.Puts())
			status, out := h.pushMultipart(tt.req, tt.file, "")
			if status != tt.status {
				t.Errorf("multipart push = %d %s; want %d", status, out, tt.status)
			}
			wantError(t, tt.name, out, tt.want...)
			h.wantUnchanged(tt.name, before)
			if n := len(h.files.Puts()); n != puts {
				t.Errorf("hosts got %d puts; want none", n-puts)
			}
			if after := h.blobs(); after != blobs {
				t.Errorf("content store changed:\nbefore:\n%s\nafter:\n%s", blobs, after)
			}
			if tmp, _ := os.ReadDir(filepath.Join(h.content.Dir(), "tmp")); len(tmp) != 0 {
				t.Errorf("temporary uploads left behind: %v", tmp)
			}
		})
	}
}

func TestContentUploadAndDownload(t *testing.T) {
	h := newFilesHarness(t)
	auth := "Bearer " + h.admin
	data := bytes.Repeat([]byte{0, 1, 2, 0xff, '\n'}, 1000)
	sum := blobSum(data)

	// Without ?sha256= the computed sum is taken; the second upload finds it stored.
	resp, out := h.send("POST", "/api/v1/content", "application/octet-stream", auth, data)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/content = %d %s; want 201", resp.StatusCode, out)
	}
	var blob wire.Blob
	if err := json.Unmarshal(out, &blob); err != nil || blob != (wire.Blob{SHA256: sum, Size: int64(len(data))}) {
		t.Fatalf("POST /api/v1/content = %s; want sha256 %s size %d", out, sum, len(data))
	}
	resp, out = h.send("POST", "/api/v1/content?sha256="+sum, "application/octet-stream", auth, data)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("second POST /api/v1/content?sha256= = %d %s; want 200 (already stored)", resp.StatusCode, out)
	}
	if n, size := h.content.Usage(); n != 1 || size != int64(len(data)) {
		t.Errorf("store holds %d blobs of %d bytes; want 1 of %d", n, size, len(data))
	}

	resp, out = h.send("GET", "/api/v1/content/"+sum, "", auth, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(out, data) {
		t.Errorf("GET /api/v1/content/%s = %d, %d bytes; want 200 with the %d uploaded bytes", sum, resp.StatusCode, len(out), len(data))
	}
	if got := resp.Header.Get("X-Felix-Sha256"); got != sum {
		t.Errorf("X-Felix-Sha256 = %q; want %q", got, sum)
	}
	resp, out = h.send("HEAD", "/api/v1/content/"+sum, "", auth, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) || len(out) != 0 {
		t.Errorf("HEAD /api/v1/content/%s = %d, Content-Length %q, %d bytes of body; want 200, %d, none",
			sum, resp.StatusCode, resp.Header.Get("Content-Length"), len(out), len(data))
	}

	unknown := blobSum([]byte("never uploaded"))
	tests := []struct {
		name         string
		method, path string
		body         []byte
		status       int
		want         []string // substrings of the error; nil for HEAD
	}{
		{"sha256 mismatch", "POST", "/api/v1/content?sha256=" + unknown, []byte("something else"), 400, []string{"mismatch"}},
		{"bad sha256 query", "POST", "/api/v1/content?sha256=xyz", []byte("x"), 400, []string{"xyz", "64 lower-case hex"}},
		{"upper-case sha256 query", "POST", "/api/v1/content?sha256=" + strings.ToUpper(sum), data, 400, []string{"64 lower-case hex"}},
		{"over the size limit", "POST", "/api/v1/content", bytes.Repeat([]byte("y"), filesMaxSize+1), 413, []string{"too large"}},
		{"over the size limit with sha256", "POST", "/api/v1/content?sha256=" + unknown, bytes.Repeat([]byte("y"), filesMaxSize+1), 413, []string{"too large"}},
		{"GET bad sha256", "GET", "/api/v1/content/xyz", nil, 400, []string{"xyz", "64 lower-case hex"}},
		{"GET upper-case sha256", "GET", "/api/v1/content/" + strings.ToUpper(sum), nil, 400, []string{"64 lower-case hex"}},
		{"GET unknown", "GET", "/api/v1/content/" + unknown, nil, 404, []string{"not found"}},
		{"HEAD unknown", "HEAD", "/api/v1/content/" + unknown, nil, 404, nil},
		{"HEAD bad sha256", "HEAD", "/api/v1/content/xyz", nil, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			ctype := ""
			if tt.body != nil {
				ctype = "application/octet-stream"
			}
			resp, out := h.send(tt.method, tt.path, ctype, auth, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("%s %s = %d %s; want %d", tt.method, tt.path, resp.StatusCode, out, tt.status)
			}
			if tt.method != "HEAD" {
				wantError(t, tt.name, out, tt.want...)
			}
			h.wantNothingStored(tt.name, before, 0, 0)
		})
	}
}

func TestPushFile(t *testing.T) {
	h := newFilesHarness(t)
	data := []byte("listen 8080\n")
	sum := h.upload(data)
	req := wire.PushRequest{JobOptions: wire.JobOptions{ID: "deploy-7", Targets: []string{"web1", "web2"}},
		Dest: "/etc/app.conf", SHA256: sum, Mode: "0640", Owner: "root:adm", Mkdir: true, Backup: true}
	var job wire.Job
	h.adminDo("POST", "/api/v1/files?wait=10s", req, &job, http.StatusOK)
	if job.CmdType != model.CmdPush || job.State != model.JobDone || job.ID != "deploy-7" || job.CmdLine != "push /etc/app.conf" {
		t.Errorf("job = cmd_type %q state %q id %q cmd_line %q; want push, done, deploy-7, \"push /etc/app.conf\"",
			job.CmdType, job.State, job.ID, job.CmdLine)
	}
	wantFiles := model.FileReport{Changed: 1, Size: int64(len(data)), SHA256: sum}
	if len(job.Results) != 2 {
		t.Fatalf("results = %+v; want web1 and web2", job.Results)
	}
	for _, r := range job.Results {
		if r.State != "ok" || r.Files == nil || *r.Files != wantFiles || r.Transport != transport.NameAgent {
			t.Errorf("%s: state %s files %+v transport %q (%s); want ok, %+v, agent", r.Host, r.State, r.Files, r.Transport, r.Error, wantFiles)
		}
		if r.Stdout != "changed /etc/app.conf\n" {
			t.Errorf("%s: stdout %q; want the changed path", r.Host, r.Stdout)
		}
	}
	var got []string
	for _, c := range h.files.Puts() {
		got = append(got, describePut(c))
	}
	slices.Sort(got)
	var want []string
	for _, host := range []string{"web1", "web2"} {
		want = append(want, describePut(putCall{Host: host, Content: data, File: model.PutFile{Dest: "/etc/app.conf",
			Kind: model.KindFile, Mode: 0o640, Size: int64(len(data)), SHA256: sum, Owner: "root:adm", Mkdir: true, Backup: true}}))
	}
	if !slices.Equal(got, want) {
		t.Errorf("puts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Again: the hosts have it, nothing changes.
	h.adminDo("POST", "/api/v1/files?wait=10s", req, &job, http.StatusOK)
	for _, r := range job.Results {
		if r.State != "ok" || r.Files == nil || *r.Files != (model.FileReport{Unchanged: 1, Size: int64(len(data)), SHA256: sum}) || r.Stdout != "" {
			t.Errorf("second push, %s: state %s files %+v stdout %q; want ok, 1 unchanged, no output", r.Host, r.State, r.Files, r.Stdout)
		}
	}

	// Without wait: 202 and the job's location; the job ends the same.
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/files", req, &acc, http.StatusAccepted)
	if j := h.waitJob(acc.JobID); j.State != model.JobDone || j.Summary["ok"] != 2 {
		t.Errorf("async push = %s %v; want done, 2 ok", j.State, j.Summary)
	}
}

func TestPushMultipart(t *testing.T) {
	h := newFilesHarness(t)
	data := bytes.Repeat([]byte("multipart\x00"), 500)
	sum := blobSum(data)
	req := wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/opt/blob", Mode: "0600"}
	for i := range 2 {
		status, out := h.pushMultipart(req, data, "?wait=10s")
		if status != http.StatusOK {
			t.Fatalf("multipart push %d = %d %s; want 200", i, status, out)
		}
		var job wire.Job
		if err := json.Unmarshal(out, &job); err != nil {
			t.Fatal(err)
		}
		if len(job.Results) != 1 || job.Results[0].State != "ok" || job.Results[0].Files == nil ||
			job.Results[0].Files.SHA256 != sum || job.Results[0].Files.Size != int64(len(data)) {
			t.Errorf("multipart push %d = %s; want web1 ok with sha256 %s", i, out, sum)
		}
		// Stored once, however often it is sent.
		if n, size := h.content.Usage(); n != 1 || size != int64(len(data)) {
			t.Errorf("after push %d the store holds %d blobs of %d bytes; want 1 of %d", i, n, size, len(data))
		}
	}
	if _, err := h.content.Stat(sum); err != nil {
		t.Errorf("Stat(uploaded) = %v", err)
	}
	puts := h.files.Puts()
	if len(puts) != 2 || !bytes.Equal(puts[0].Content, data) || puts[0].File.Mode != 0o600 || puts[0].File.Dest != "/opt/blob" {
		t.Errorf("puts = %d; want 2 of /opt/blob mode 0600 with the uploaded content", len(puts))
	}
}

func TestPushTree(t *testing.T) {
	h := newFilesHarness(t)
	conf := []byte("a = 1\n")
	sum := h.upload(conf)
	req := wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/srv/app", Owner: "app:app", Mkdir: true, FollowSymlinks: true,
		Entries: []wire.PushEntry{
			{Path: ".", Kind: model.KindDir.String(), Mode: "0755"},
			{Path: "a.conf", Kind: model.KindFile.String(), SHA256: sum, Mode: "0600"},
			{Path: "sub", Kind: model.KindDir.String()},
			{Path: "sub/link", Kind: model.KindSymlink.String(), Link: "../a.conf"},
		}}
	var job wire.Job
	h.adminDo("POST", "/api/v1/files?wait=10s", req, &job, http.StatusOK)
	if len(job.Results) != 1 || job.Results[0].State != "ok" ||
		*job.Results[0].Files != (model.FileReport{Changed: 4, Size: int64(len(conf))}) {
		t.Errorf("tree push results = %+v; want web1 ok, 4 changed, %d bytes, no single sha256", job.Results, len(conf))
	}
	put := func(kind model.FileKind, dest string, mode uint32, root string, mkdir bool) model.PutFile {
		return model.PutFile{Kind: kind, Dest: dest, Mode: mode, Root: root, Mkdir: mkdir, Owner: "app:app", FollowSymlinks: true}
	}
	file := put(model.KindFile, "/srv/app/a.conf", 0o600, "/srv/app", false)
	file.SHA256, file.Size = sum, int64(len(conf))
	link := put(model.KindSymlink, "/srv/app/sub/link", 0, "/srv/app", false)
	link.Link = "../a.conf"
	want := []string{
		describePut(putCall{Host: "web1", File: put(model.KindDir, "/srv/app", 0o755, "", true)}),
		describePut(putCall{Host: "web1", File: file, Content: conf}),
		describePut(putCall{Host: "web1", File: put(model.KindDir, "/srv/app/sub", 0, "/srv/app", false)}),
		describePut(putCall{Host: "web1", File: link}),
	}
	var got []string
	for _, c := range h.files.Puts() {
		got = append(got, describePut(c))
	}
	if !slices.Equal(got, want) {
		t.Errorf("puts in order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFetch(t *testing.T) {
	h := newFilesHarness(t)
	var job wire.Job
	h.adminDo("POST", "/api/v1/fetch?wait=10s", wire.FetchRequest{JobOptions: onHosts("web*"), Path: "/etc/hostname"}, &job, http.StatusOK)
	if job.CmdType != model.CmdFetch || job.State != model.JobDone || len(job.Results) != 2 {
		t.Fatalf("fetch job = %+v; want a done fetch of web1 and web2", job)
	}
	for _, r := range job.Results {
		data := fetchedContent(r.Host, "/etc/hostname")
		want := model.FileReport{Size: int64(len(data)), SHA256: blobSum(data)}
		if r.State != "ok" || r.Files == nil || *r.Files != want {
			t.Errorf("%s: state %s files %+v (%s); want ok with %+v", r.Host, r.State, r.Files, r.Error, want)
			continue
		}
		resp, out := h.send("GET", "/api/v1/content/"+r.Files.SHA256, "", "Bearer "+h.admin, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(out, data) {
			t.Errorf("GET the copy of %s = %d %q; want 200 %q", r.Host, resp.StatusCode, out, data)
		}
	}
	if got := h.files.Gets(); len(got) != 2 || !slices.Contains(got, "web1 /etc/hostname") || !slices.Contains(got, "web2 /etc/hostname") {
		t.Errorf("gets = %q; want /etc/hostname from web1 and web2", got)
	}
	if n, _ := h.content.Usage(); n != 2 {
		t.Errorf("store holds %d blobs; want the 2 copies", n)
	}
	if tmp, _ := os.ReadDir(filepath.Join(h.content.Dir(), "tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestFilesDryRun(t *testing.T) {
	h := newFilesHarness(t)
	sum := h.upload([]byte("content\n"))
	tests := []struct {
		name, path string
		body       any
	}{
		{"push query", "/api/v1/files?dry_run=true", wire.PushRequest{JobOptions: onHosts("web*", "ghost"), Dest: "/etc/x", SHA256: sum}},
		{"push body", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"web*", "ghost"}, DryRun: true}, Dest: "/etc/x", SHA256: sum}},
		{"push tree", "/api/v1/files?dry_run=1", wire.PushRequest{JobOptions: onHosts("web*", "ghost"), Dest: "/srv",
			Entries: []wire.PushEntry{{Path: ".", Kind: model.KindDir.String()}, {Path: "f", Kind: model.KindFile.String(), SHA256: sum}}}},
		{"fetch query", "/api/v1/fetch?dry_run=true", wire.FetchRequest{JobOptions: onHosts("web*", "ghost"), Path: "/etc/x"}},
		{"fetch body", "/api/v1/fetch", wire.FetchRequest{JobOptions: wire.JobOptions{Targets: []string{"web*", "ghost"}, DryRun: true}, Path: "/etc/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stored()
			var dr wire.DryRun
			h.adminDo("POST", tt.path, tt.body, &dr, http.StatusOK)
			var got []string
			for _, host := range dr.Hosts {
				got = append(got, host.Host+"="+host.State+"/"+host.Transport)
			}
			if want := []string{"ghost=unknown/", "web1=would run/agent", "web2=would run/agent"}; !slices.Equal(got, want) {
				t.Errorf("dry run hosts = %q; want %q", got, want)
			}
			h.wantNothingStored(tt.name, before, 0, 0)
		})
	}

	// A multipart dry run keeps its file part (content is stored first, and
	// the dry run checks the push's content is stored), but starts no job.
	before := h.dump()
	data := []byte("multipart dry run\n")
	status, out := h.pushMultipart(wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/etc/x"}, data, "?dry_run=true")
	var dr wire.DryRun
	if err := json.Unmarshal(out, &dr); status != http.StatusOK || err != nil || len(dr.Hosts) != 1 || dr.Hosts[0].State != "would run" {
		t.Errorf("multipart dry run = %d %s; want 200 with web1 would run", status, out)
	}
	h.wantUnchanged("multipart dry run", before)
	if n := len(h.files.Puts()); n != 0 {
		t.Errorf("multipart dry run: hosts got %d puts; want none", n)
	}
}

func TestPushRerun(t *testing.T) {
	h := newFilesHarness(t)
	data := []byte("v1\n")
	sum := h.upload(data)
	var first wire.Job
	h.adminDo("POST", "/api/v1/files?wait=10s", wire.PushRequest{JobOptions: onHosts("web1", "web2"), Dest: "/etc/v", SHA256: sum}, &first, http.StatusOK)
	if first.Summary["ok"] != 2 {
		t.Fatalf("first push = %v; want 2 ok", first.Summary)
	}
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/jobs/"+first.JobID+"/rerun", nil, &acc, http.StatusAccepted)
	if acc.JobID == first.JobID || acc.Total != 2 {
		t.Fatalf("rerun = %+v; want a new job of 2 hosts", acc)
	}
	again := h.waitJob(acc.JobID)
	if again.CmdType != model.CmdPush || again.CmdLine != first.CmdLine || again.Summary["ok"] != 2 {
		t.Errorf("rerun = %s %q %v; want the push again, 2 ok", again.CmdType, again.CmdLine, again.Summary)
	}
	for _, r := range again.Results {
		if r.Files == nil || *r.Files != (model.FileReport{Unchanged: 1, Size: int64(len(data)), SHA256: sum}) {
			t.Errorf("rerun on %s: files %+v; want 1 unchanged", r.Host, r.Files)
		}
	}
	if n := len(h.files.Puts()); n != 4 {
		t.Errorf("puts = %d; want 4 (2 hosts, twice)", n)
	}
}

func TestFilesAuthRequired(t *testing.T) {
	h := newFilesHarness(t)
	sum := h.upload([]byte("content\n"))
	push := `{"targets":["web1"],"dest":"/etc/x","sha256":"` + sum + `"}`
	routes := []struct {
		method, path, ctype, body string
	}{
		{"POST", "/api/v1/content", "application/octet-stream", "new content"},
		{"POST", "/api/v1/content?sha256=" + blobSum([]byte("new content")), "application/octet-stream", "new content"},
		{"GET", "/api/v1/content/" + sum, "", ""},
		{"HEAD", "/api/v1/content/" + sum, "", ""},
		{"POST", "/api/v1/files", "application/json", push},
		{"POST", "/api/v1/files?wait=10s", "application/json", push},
		{"POST", "/api/v1/files?dry_run=true", "application/json", push},
		{"POST", "/api/v1/fetch", "application/json", `{"targets":["web1"],"path":"/etc/x"}`},
		{"POST", "/api/v1/fetch?dry_run=true", "application/json", `{"targets":["web1"],"path":"/etc/x"}`},
	}
	auths := []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer fat_wrong"},
		{"token without scheme", h.admin},
	}
	for _, r := range routes {
		for _, a := range auths {
			auth := a.header
			t.Run(r.method+" "+r.path+"/"+a.name, func(t *testing.T) {
				before := h.stored()
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				resp, out := h.send(r.method, r.path, r.ctype, auth, body)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s = %d %s; want 401", r.method, r.path, resp.StatusCode, out)
				}
				if r.method != "HEAD" {
					wantError(t, r.method+" "+r.path, out)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q; want Bearer", resp.Header.Get("WWW-Authenticate"))
				}
				h.wantNothingStored(r.method+" "+r.path, before, 0, 0)
			})
		}
	}
}

// TestFilesWithoutContentStore checks that a master without a content
// store answers 503 on the file routes and runs nothing.
func TestFilesWithoutContentStore(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	sum := blobSum([]byte("x"))
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/api/v1/content", "x"},
		{"GET", "/api/v1/content/" + sum, ""},
		{"POST", "/api/v1/files", `{"targets":["web1"],"dest":"/etc/x","sha256":"` + sum + `"}`},
		{"POST", "/api/v1/fetch", `{"targets":["web1"],"path":"/etc/x"}`},
	} {
		before := h.dump()
		var body any
		if r.body != "" {
			body = r.body
		}
		status, out := h.do(h.client(nil), r.method, r.path, "Bearer "+h.admin, body)
		if status != http.StatusServiceUnavailable {
			t.Errorf("%s %s = %d %s; want 503", r.method, r.path, status, out)
		}
		wantError(t, r.path, out, "no content store")
		h.wantUnchanged(r.path, before)
	}
	if status, out := h.do(h.client(nil), "HEAD", "/api/v1/content/"+sum, "Bearer "+h.admin, nil); status != http.StatusServiceUnavailable {
		t.Errorf("HEAD /api/v1/content/%s = %d %s; want 503", sum, status, out)
	}
	if n := len(h.fake.Calls()); n != 0 {
		t.Errorf("transport called %d times; want 0", n)
	}
}

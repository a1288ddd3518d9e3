package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// filesFake is a master for cp, fetch and pkg: it stores content by sha256,
// starts file jobs that end as job, and records every request.
type filesFake struct {
	srv *httptest.Server

	mu    sync.Mutex        // protects the fields below
	reqs  []recorded        // every request with its body
	blobs map[string][]byte // the content the master stores
	serve map[string][]byte // what GET /api/v1/content/{sha256} sends instead, if set
	job   wire.Job          // what a started job ends as
	pages int               // hosts per page of the job (pageOf); 0: one page
}

func newFilesFake(t *testing.T) *filesFake {
	t.Helper()
	f := &filesFake{blobs: map[string][]byte{}, serve: map[string][]byte{}}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			reply(w, 401, wire.Error{Error: "api token: invalid or expired token"})
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reqs = append(f.reqs, recorded{Line: r.Method + " " + r.URL.RequestURI(), ContentType: r.Header.Get("Content-Type"), Body: string(body)})
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/api/v1/content/") && (r.Method == "GET" || r.Method == "HEAD"):
			sum := strings.TrimPrefix(p, "/api/v1/content/")
			b, ok := f.blobs[sum]
			if !ok {
				reply(w, 404, wire.Error{Error: "content: blob not found"})
				return
			}
			if s, ok := f.serve[sum]; ok {
				b = s
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(200)
			if r.Method == "GET" {
				w.Write(b)
			}
		case p == "/api/v1/content" && r.Method == "POST":
			sum := blobSum(body)
			if want := r.URL.Query().Get("sha256"); want != "" && want != sum {
				reply(w, 400, wire.Error{Error: "content: size or sha256 mismatch"})
				return
			}
			f.blobs[sum] = body
			reply(w, 201, wire.Blob{SHA256: sum, Size: int64(len(body))})
		case (p == "/api/v1/files" || p == "/api/v1/fetch" || p == "/api/v1/packages" || p == "/api/v1/apply") && r.Method == "POST":
			var opts struct {
				wire.JobOptions
			}
			json.Unmarshal(body, &opts)
			if p != "/api/v1/packages" && p != "/api/v1/apply" && (opts.DryRun || r.URL.Query().Get("dry_run") == "true") {
				reply(w, 200, wire.DryRun{Targets: opts.Targets, Hosts: []wire.DryRunHost{{Host: "web01", State: "would run", Transport: "agent"}}})
				return
			}
			reply(w, 202, wire.ExecAccepted{JobID: f.job.JobID, State: "running", Total: f.job.Total})
		case p == "/api/v1/jobs/"+f.job.JobID && r.Method == "GET":
			if f.pages > 0 {
				reply(w, 200, pageOf(f.job, r.URL.Query(), f.pages))
				return
			}
			reply(w, 200, f.job)
		default: // the event stream too: follow polls instead
			reply(w, 404, wire.Error{Error: "no such endpoint"})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// run runs felix with args, the connection flags after the command name.
func (f *filesFake) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runAt(t, f.srv, args...)
}

// take returns the requests recorded since the last take.
func (f *filesFake) take() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func (f *filesFake) setJob(j wire.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.job = j
}

func (f *filesFake) store(b []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := blobSum(b)
	f.blobs[sum] = b
	return sum
}

func requestLines(rs []recorded) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Line)
	}
	return out
}

// sentJSON decodes the body of the request whose line is line into v.
func sentJSON(t *testing.T, rs []recorded, line string, v any) {
	t.Helper()
	for _, r := range rs {
		if r.Line == line {
			if err := json.Unmarshal([]byte(r.Body), v); err != nil {
				t.Fatalf("%s: body %q: %v", line, r.Body, err)
			}
			return
		}
	}
	t.Fatalf("no request %s among %q", line, requestLines(rs))
}

func blobSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeMode(t *testing.T, p string, b []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

// pushDone is a finished push of one host.
var pushDone = wire.Job{JobID: "jpush", CmdType: "push", CmdLine: "push /etc/app.conf", State: "done", Total: 1,
	Summary: map[string]int{"ok": 1}, Results: []wire.HostResult{{Host: "web01", State: "ok", Transport: "agent",
		Files: &model.FileReport{Changed: 1, Size: 12}}}}

func TestCpRefusesBeforeSending(t *testing.T) {
	f := newFilesFake(t)
	f.setJob(pushDone)
	dir := t.TempDir()
	file := filepath.Join(dir, "app.conf")
	writeMode(t, file, []byte("x"), 0o644)
	missing := filepath.Join(dir, "no-such-file")
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"missing source", []string{"cp", missing, "-t", "web01", "/etc/x"}, missing},
		{"directory without -r", []string{"cp", dir, "-t", "web01", "/srv/x"}, dir + " is a directory (copy a tree with -r)"},
		{"--mode with -r", []string{"cp", "-r", "--mode", "0644", dir, "-t", "web01", "/srv/x"}, "--mode is for a single file"},
		{"bad mode", []string{"cp", "--mode", "999", file, "-t", "web01", "/etc/x"}, `mode "999"`},
		{"not a regular file", []string{"cp", os.DevNull, "-t", "web01", "/etc/x"}, "not a regular file"},
		{"no targets", []string{"cp", file, "/etc/x"}, "no targets"},
		{"no dest", []string{"cp", file, "-t", "web01"}, "want SRC and DEST"},
		{"bad transport", []string{"cp", file, "-t", "web01", "--transport", "rsh", "/etc/x"}, "--transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and an error containing %q", code, stdout, stderr, tt.want)
			}
			if got := f.take(); len(got) != 0 {
				t.Errorf("sent %q; want nothing", requestLines(got))
			}
		})
	}
}

func TestCpUploadsOnlyMissingContent(t *testing.T) {
	f := newFilesFake(t)
	f.setJob(pushDone)
	dir := t.TempDir()
	have, fresh := []byte("already on the master\n"), []byte("new content\x00\xff\n")
	haveSum := f.store(have)
	freshSum := blobSum(fresh)
	writeMode(t, filepath.Join(dir, "have"), have, 0o644)
	writeMode(t, filepath.Join(dir, "fresh"), fresh, 0o644)

	code, stdout, stderr := f.run(t, "cp", filepath.Join(dir, "have"), "-t", "web01", "/etc/app.conf")
	if code != 0 || !strings.Contains(stdout, "CHANGED") || !strings.Contains(stdout, "job jpush: 1 host: 1 ok") {
		t.Errorf("cp of stored content: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	got := f.take()
	if want := []string{"HEAD /api/v1/content/" + haveSum, "POST /api/v1/files", "GET /api/v1/jobs/jpush/events", "GET /api/v1/jobs/jpush"}; !slices.Equal(requestLines(got), want) {
		t.Errorf("sent %q; want %q (no upload)", requestLines(got), want)
	}
	var req wire.PushRequest
	sentJSON(t, got, "POST /api/v1/files", &req)
	if req.SHA256 != haveSum || req.Dest != "/etc/app.conf" || len(req.Entries) != 0 {
		t.Errorf("push = %+v; want sha256 %s to /etc/app.conf", req, haveSum)
	}

	code, stdout, stderr = f.run(t, "cp", filepath.Join(dir, "fresh"), "-t", "web01,web02", "-t", "db1", "/etc/app.conf",
		"--mode", "0640", "--owner", "root:adm", "--mkdir", "--backup", "--follow-symlinks", "--id", "deploy-7",
		"--timeout", "30s", "--batch", "1", "--transport", "agent")
	if code != 0 {
		t.Errorf("cp of new content: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	got = f.take()
	upload := "POST /api/v1/content?sha256=" + freshSum
	if want := []string{"HEAD /api/v1/content/" + freshSum, upload, "POST /api/v1/files", "GET /api/v1/jobs/jpush/events", "GET /api/v1/jobs/jpush"}; !slices.Equal(requestLines(got), want) {
		t.Errorf("sent %q; want %q", requestLines(got), want)
	}
	for _, r := range got {
		if r.Line == upload && (r.Body != string(fresh) || r.ContentType != "application/octet-stream") {
			t.Errorf("upload sent %q as %q; want %q as application/octet-stream", r.Body, r.ContentType, fresh)
		}
	}
	req = wire.PushRequest{}
	sentJSON(t, got, "POST /api/v1/files", &req)
	want := wire.PushRequest{JobOptions: wire.JobOptions{ID: "deploy-7", Targets: []string{"web01", "web02", "db1"}, Timeout: "30s",
		Batch: "1", Transport: "agent"}, Dest: "/etc/app.conf", SHA256: freshSum, Mode: "0640", Owner: "root:adm",
		Mkdir: true, Backup: true, FollowSymlinks: true}
	if b, w := mustJSON(t, req), mustJSON(t, want); b != w {
		t.Errorf("push = %s; want %s", b, w)
	}

	// A dry run uploads the content (the master checks it is stored) but starts nothing.
	code, stdout, _ = f.run(t, "cp", filepath.Join(dir, "fresh"), "-t", "web01", "/etc/app.conf", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "would run") {
		t.Errorf("dry run: exit %d, stdout %s", code, stdout)
	}
	if got := requestLines(f.take()); !slices.Equal(got, []string{"HEAD /api/v1/content/" + freshSum, "POST /api/v1/files?dry_run=true"}) {
		t.Errorf("dry run sent %q", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCpTree(t *testing.T) {
	f := newFilesFake(t)
	f.setJob(pushDone)
	root := filepath.Join(t.TempDir(), "app")
	outside := t.TempDir() // reached through a symlink, never walked
	writeMode(t, filepath.Join(outside, "secret"), []byte("not to be sent"), 0o600)
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	a, b := []byte("a = 1\n"), []byte("#!/bin/sh\n")
	writeMode(t, filepath.Join(root, "a.conf"), a, 0o640)
	writeMode(t, filepath.Join(root, "sub", "run.sh"), b, 0o755)
	for _, l := range []struct{ target, at string }{{"../a.conf", "sub/link"}, {outside, "out"}} {
		if err := os.Symlink(l.target, filepath.Join(root, l.at)); err != nil {
			t.Fatal(err)
		}
	}
	for p, m := range map[string]fs.FileMode{root: 0o755, filepath.Join(root, "sub"): 0o750} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}

	code, stdout, stderr := f.run(t, "cp", "-r", root, "-t", "web01", "/srv/app", "--owner", "app:app")
	if code != 0 {
		t.Fatalf("cp -r: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	got := f.take()
	var req wire.PushRequest
	sentJSON(t, got, "POST /api/v1/files", &req)
	want := []wire.PushEntry{
		{Path: ".", Kind: model.KindDir.String(), Mode: "0755"},
		{Path: "a.conf", Kind: model.KindFile.String(), Mode: "0640", SHA256: blobSum(a)},
		{Path: "out", Kind: model.KindSymlink.String(), Link: outside},
		{Path: "sub", Kind: model.KindDir.String(), Mode: "0750"},
		{Path: "sub/link", Kind: model.KindSymlink.String(), Link: "../a.conf"},
		{Path: "sub/run.sh", Kind: model.KindFile.String(), Mode: "0755", SHA256: blobSum(b)},
	}
	if g, w := mustJSON(t, req.Entries), mustJSON(t, want); g != w {
		t.Errorf("entries:\n%s\nwant:\n%s", g, w)
	}
	if req.Dest != "/srv/app" || req.SHA256 != "" || req.Mode != "" || req.Owner != "app:app" {
		t.Errorf("push = dest %q sha256 %q mode %q owner %q; want /srv/app, none, none, app:app", req.Dest, req.SHA256, req.Mode, req.Owner)
	}
	var uploads []string
	for _, r := range got {
		if strings.HasPrefix(r.Line, "POST /api/v1/content") {
			uploads = append(uploads, r.Body)
		}
	}
	slices.Sort(uploads)
	if want := []string{string(b), string(a)}; !slices.Equal(uploads, want) {
		t.Errorf("uploaded %q; want %q (nothing through the symlink)", uploads, want)
	}

	// SRC a symlink to the tree: the tree is copied, not the link.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := f.run(t, "cp", "-r", link, "-t", "web01", "/srv/app"); code != 0 {
		t.Fatalf("cp -r LINK: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	req = wire.PushRequest{}
	sentJSON(t, f.take(), "POST /api/v1/files", &req)
	if g, w := mustJSON(t, req.Entries), mustJSON(t, want); g != w {
		t.Errorf("entries through a link to the tree:\n%s\nwant:\n%s", g, w)
	}
}

func TestModeBits(t *testing.T) {
	tests := []struct {
		in   fs.FileMode
		want uint32
	}{
		{0o644, 0o644},
		{fs.ModeDir | 0o755, 0o755},
		{fs.ModeSetuid | 0o755, 0o4755},
		{fs.ModeSetgid | fs.ModeDir | 0o2775&0o777, 0o2775},
		{fs.ModeSticky | fs.ModeDir | 0o777, 0o1777},
		{fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777, 0o7777},
		{fs.ModeSymlink | 0o777, 0o777},
	}
	for _, tt := range tests {
		if got := modeBits(tt.in); got != tt.want {
			t.Errorf("modeBits(%v) = %#o; want %#o", tt.in, got, tt.want)
		}
	}
}

// fetchJob is a finished fetch whose results are hosts.
func fetchJob(results ...wire.HostResult) wire.Job {
	j := wire.Job{JobID: "jfetch", CmdType: "fetch", CmdLine: "fetch /etc/hostname", State: "done", Total: len(results),
		Summary: map[string]int{}, Results: results}
	for _, r := range results {
		j.Summary[string(r.State)]++
	}
	return j
}

func okCopy(host string, b []byte) wire.HostResult {
	return wire.HostResult{Host: host, State: "ok", Transport: "agent", Files: &model.FileReport{Size: int64(len(b)), SHA256: blobSum(b)}}
}

// files lists the files below dir, relative and slash-separated.
func filesBelow(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestFetch(t *testing.T) {
	one, two := []byte("web01.example\n"), []byte("web02.example\n")
	tests := []struct {
		name     string
		results  []wire.HostResult
		tamper   map[string][]byte // sha256 → what the master sends instead
		code     int
		want     map[string]string // file below OUTDIR → content
		wantOut  []string          // in stdout
		notFetch []string          // sha256s never downloaded
	}{
		{"two hosts", []wire.HostResult{okCopy("web01", one), okCopy("web02", two)}, nil, 0,
			map[string]string{"web01/hostname": string(one), "web02/hostname": string(two)},
			[]string{"SAVED", "web01/hostname", "web02/hostname", blobSum(one), "2 hosts: 2 ok"}, nil},
		{"wrong body", []wire.HostResult{okCopy("web01", one), okCopy("web02", two)},
			map[string][]byte{blobSum(one): []byte("tampered\n")}, 1,
			map[string]string{"web02/hostname": string(two)},
			[]string{"error: the copy of web01 has sha256 " + blobSum([]byte("tampered\n"))[:20]}, nil},
		{"short body", []wire.HostResult{okCopy("web01", one)}, map[string][]byte{blobSum(one): one[:3]}, 1,
			nil, []string{"error: the copy of web01 has sha256"}, nil},
		{"unsafe host ids", []wire.HostResult{okCopy("../evil", one), okCopy("a/b", one), okCopy(".hidden", one), okCopy("web02", two)}, nil, 1,
			map[string]string{"web02/hostname": string(two)},
			[]string{"cannot name a directory"}, []string{blobSum(one)}},
		{"a failed host", []wire.HostResult{okCopy("web01", one),
			{Host: "web02", State: "failed", Transport: "agent", Error: "open /etc/hostname: permission denied"}}, nil, 1,
			map[string]string{"web01/hostname": string(one)},
			[]string{"permission denied", "2 hosts: 1 failed, 1 ok"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(fetchJob(tt.results...))
			f.store(one)
			f.store(two)
			f.mu.Lock()
			for k, v := range tt.tamper {
				f.serve[k] = v
			}
			f.mu.Unlock()
			top := t.TempDir()
			out := filepath.Join(top, "out")
			code, stdout, stderr := f.run(t, "fetch", "-t", "web*", "/etc/hostname", out, "--no-fold") // saved paths per host
			if code != tt.code {
				t.Errorf("exit %d; want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			var wantFiles []string
			for p, c := range tt.want {
				wantFiles = append(wantFiles, p)
				if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != c {
					t.Errorf("%s = %q, %v; want %q", p, b, err, c)
				}
			}
			slices.Sort(wantFiles)
			if entries, _ := os.ReadDir(top); len(entries) != 1 || entries[0].Name() != "out" {
				t.Errorf("beside OUTDIR: %v; want nothing", entries)
			}
			if got := filesBelow(t, top); !slices.Equal(got, prefixAll("out/", wantFiles)) {
				t.Errorf("files written %q; want %q (no temporary files, nothing outside OUTDIR)", got, prefixAll("out/", wantFiles))
			}
			sent := f.take()
			for _, r := range sent {
				for _, sum := range tt.notFetch {
					if r.Line == "GET /api/v1/content/"+sum {
						t.Errorf("downloaded %s for a host refused", sum)
					}
				}
			}
			var req wire.FetchRequest
			sentJSON(t, sent, "POST /api/v1/fetch", &req)
			if req.Path != "/etc/hostname" || !slices.Equal(req.Targets, []string{"web*"}) {
				t.Errorf("fetch request = %+v", req)
			}
		})
	}
}

func prefixAll(p string, ss []string) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, p+s)
	}
	return out
}

func TestFetchJSON(t *testing.T) {
	f := newFilesFake(t)
	one := []byte("web01.example\n")
	f.store(one)
	f.setJob(fetchJob(okCopy("web01", one)))
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := f.run(t, "fetch", "-t", "web01", "/etc/hostname", out, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var got struct {
		wire.Job
		Saved map[string]string `json:"saved"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if got.JobID != "jfetch" || got.Saved["web01"] != filepath.Join(out, "web01", "hostname") {
		t.Errorf("json = job %q saved %v; want jfetch and web01's path", got.JobID, got.Saved)
	}
}

func TestFetchRefusesBeforeSending(t *testing.T) {
	f := newFilesFake(t)
	f.setJob(fetchJob())
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	writeMode(t, blocker, []byte("x"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"relative path", []string{"fetch", "-t", "web01", "etc/hostname", dir}, "want the absolute path of a file"},
		{"root", []string{"fetch", "-t", "web01", "/", dir}, "want the absolute path of a file"},
		{"ends in ..", []string{"fetch", "-t", "web01", "/etc/..", dir}, "want the absolute path of a file"},
		{"ends in .", []string{"fetch", "-t", "web01", "/etc/.", dir}, "want the absolute path of a file"},
		{"windows drive-relative", []string{"fetch", "-t", "web01", `C:..\x`, dir}, "relative to the drive"},
		{"windows UNC", []string{"fetch", "-t", "web01", `\\server\share\x`, dir}, "network (UNC)"},
		{"windows device", []string{"fetch", "-t", "web01", `C:\app\NUL`, dir}, "reserved device name"},
		{"no outdir", []string{"fetch", "-t", "web01", "/etc/hostname"}, "want PATH and OUTDIR"},
		{"no targets", []string{"fetch", "/etc/hostname", dir}, "no targets"},
		{"outdir under a file", []string{"fetch", "-t", "web01", "/etc/hostname", filepath.Join(blocker, "out")}, blocker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and an error containing %q", code, stdout, stderr, tt.want)
			}
			if got := f.take(); len(got) != 0 {
				t.Errorf("sent %q; want nothing", requestLines(got))
			}
		})
	}
}

// tableRows reads the cells of a go-pretty table, header first.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "│") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "│"), "│")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

func TestPrintFileJob(t *testing.T) {
	sum := blobSum([]byte("x"))
	tests := []struct {
		name string
		job  wire.Job
		want [][]string
	}{
		{"push", wire.Job{CmdType: "push", Results: []wire.HostResult{
			{Host: "web01", State: "ok", Transport: "agent", DurationMS: 1500, Files: &model.FileReport{Changed: 2, Unchanged: 1, Size: 2048}},
			{Host: "web02", State: "failed", Transport: "ssh", DurationMS: 20, Error: "put /srv/x: permission denied",
				Files: &model.FileReport{Changed: 1, Size: 10}},
			{Host: "web03", State: "unreachable", Error: "dial: refused"},
			{Host: "web04", State: "ok", Transport: "agent", Files: &model.FileReport{Unchanged: 1, Size: 5 << 20, SHA256: sum}},
		}}, [][]string{
			{"HOST", "STATE", "CHANGED", "UNCHANGED", "SIZE", "TRANSPORT", "TIME", "ERROR"},
			{"web01", "ok", "2", "1", "2.0 KiB", "agent", "1.5s", ""},
			{"web02", "failed", "1", "0", "10 B", "ssh", "20ms", "put /srv/x: permission denied"},
			{"web03", "unreachable", "-", "-", "-", "", "0s", "dial: refused"},
			{"web04", "ok", "0", "1", "5.0 MiB", "agent", "0s", ""},
		}},
		{"fetch", wire.Job{CmdType: "fetch", Results: []wire.HostResult{
			{Host: "web01", State: "ok", Transport: "agent", DurationMS: 2000, Files: &model.FileReport{Size: 1536, SHA256: sum}},
			{Host: "web02", State: "failed", Transport: "ssh", Error: "not a regular file", Files: &model.FileReport{Size: 3, SHA256: sum}},
			{Host: "web03", State: "timeout", Error: "no answer"},
		}}, [][]string{
			{"HOST", "STATE", "SIZE", "SHA256", "TRANSPORT", "TIME", "ERROR"},
			{"web01", "ok", "1.5 KiB", sum, "agent", "2s", ""},
			{"web02", "failed", "-", "-", "ssh", "0s", "not a regular file"},
			{"web03", "timeout", "-", "-", "", "0s", "no answer"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			printFileJob(&buf, tt.job)
			got := tableRows(buf.String())
			if mustJSON(t, got) != mustJSON(t, tt.want) {
				t.Errorf("table:\n%s\nrows %q\nwant %q", buf.String(), got, tt.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1024.0 KiB"},
		{5 << 20, "5.0 MiB"},
		{1 << 30, "1.0 GiB"},
		{3 << 40, "3.0 TiB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q; want %q", tt.n, got, tt.want)
		}
	}
}

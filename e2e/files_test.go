package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256Bytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// cp runs felix cp -o json and returns the job and the exit status.
func (c *cluster) cp(args ...string) (wire.Job, int, string) {
	c.t.Helper()
	out, errOut, code := c.felix(append([]string{"cp", "-o", "json"}, args...)...)
	var j wire.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		c.t.Fatalf("felix cp %v: exit %d: %v\n%s%s", args, code, err, out, errOut)
	}
	return j, code, errOut
}

func jobCount(c *cluster) int {
	c.t.Helper()
	var list wire.JobList
	if status := c.api("GET", "/api/v1/jobs?limit=1000", nil, &list); status != http.StatusOK {
		c.t.Fatalf("GET jobs: %d", status)
	}
	return len(list.Jobs)
}

// TestFileDistribution pushes, re-pushes, changes, copies a tree and
// fetches, through the real binaries, to a minion and to a real sshd host,
// comparing what landed on disk; and checks the bad inputs of the issue.
func TestFileDistribution(t *testing.T) {
	sa := sshtest.Start(t, "127.0.0.40")
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(sa.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, 0)
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q]\nagent = false\n"+
		"[callbacks]\nsecret = %q\nallow = [\"127.0.0.0/8\"]\n", known, sa.ClientKey, e2eSecret))
	// fr's minion may only touch files under its root.
	root := t.TempDir()
	frDir := filepath.Join(cl.dir, "fr")
	writeFile(t, filepath.Join(frDir, "minion.toml"), fmt.Sprintf("file_roots = [%q]\n", root), 0o600)
	minions := cl.joinAll("fa", "fr")
	if out, errOut, code := cl.felix("hosts", "add", sa.Host, "--id", "sa", "--port", strconv.Itoa(sa.Port)); code != 0 {
		t.Fatalf("felix hosts add: exit %d %s%s", code, out, errOut)
	}

	src := t.TempDir()
	conf := filepath.Join(src, "app.conf")
	writeFile(t, conf, "listen 80;\n", 0o644)

	// Each host is a directory on this one machine: push to a path of its own.
	for _, h := range []struct{ id, transport string }{{"fa", "agent"}, {"sa", "ssh"}} {
		t.Run(h.id, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), h.id)
			dest := filepath.Join(base, "etc", "app.conf")
			writeFile(t, conf, "listen 80;\n", 0o644)

			// Push (missing parent directories made with --mkdir).
			j, code, errOut := cl.cp(conf, "-t", h.id, dest, "--mkdir", "--mode", "0640")
			r := resultsByHost(j)[h.id]
			if code != 0 || r.State != "ok" || r.Transport != h.transport || r.Files == nil || r.Files.Changed != 1 {
				t.Fatalf("push: exit %d %+v %s", code, r, errOut)
			}
			if got := sha256File(t, dest); got != sha256File(t, conf) || r.Files.SHA256 != got {
				t.Errorf("pushed sha256 %s; want %s (reported %s)", got, sha256File(t, conf), r.Files.SHA256)
			}
			if st, _ := os.Stat(dest); st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v; want 0640", st.Mode())
			}
			before, _ := os.Stat(dest)

			// Re-push: unchanged, nothing rewritten.
			j, code, _ = cl.cp(conf, "-t", h.id, dest, "--mode", "0640")
			if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" || r.Files.Changed != 0 || r.Files.Unchanged != 1 {
				t.Errorf("re-push: exit %d %+v", code, r)
			}
			after, _ := os.Stat(dest)
			if !os.SameFile(before, after) {
				t.Error("an unchanged re-push replaced the file")
			}
			// Another mode only: set in place, the content not sent again.
			j, code, _ = cl.cp(conf, "-t", h.id, dest, "--mode", "0600")
			if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" || r.Files.Changed != 1 {
				t.Errorf("mode-only push: exit %d %+v", code, r)
			}
			if st, _ := os.Stat(dest); !os.SameFile(before, st) || st.Mode().Perm() != 0o600 {
				t.Errorf("mode-only push: mode %v, same file %v; want 0600 in place", st.Mode(), os.SameFile(before, st))
			}
			os.Chmod(dest, 0o640)

			// Change and push with a backup.
			writeFile(t, conf, "listen 8080;\n", 0o644)
			j, code, _ = cl.cp(conf, "-t", h.id, dest, "--backup")
			r = resultsByHost(j)[h.id]
			if code != 0 || r.State != "ok" || r.Files.Changed != 1 || !strings.Contains(r.Stdout, "backup "+dest+".felix-bak-") {
				t.Errorf("changed push: exit %d %+v", code, r)
			}
			if got := sha256File(t, dest); got != sha256File(t, conf) {
				t.Errorf("changed push landed sha256 %s; want %s", got, sha256File(t, conf))
			}
			baks, _ := filepath.Glob(dest + ".felix-bak-*")
			if len(baks) != 1 {
				t.Fatalf("backups %v; want one", baks)
			}
			if b, _ := os.ReadFile(baks[0]); string(b) != "listen 80;\n" {
				t.Errorf("backup holds %q", b)
			}
			if st, _ := os.Stat(dest); st.Mode().Perm() != 0o640 {
				t.Errorf("mode after a push without --mode %v; want the old file's 0640", st.Mode())
			}

			// A tree: modes kept, a symlink copied as a link, then all unchanged.
			tree := filepath.Join(t.TempDir(), "site")
			writeFile(t, filepath.Join(tree, "index.html"), "<h1>hi</h1>\n", 0o644)
			writeFile(t, filepath.Join(tree, "bin", "run.sh"), "#!/bin/sh\necho run\n", 0o755)
			writeFile(t, filepath.Join(tree, "private", "key"), "secret\n", 0o600)
			os.Chmod(filepath.Join(tree, "private"), 0o700)
			if err := os.Symlink("../index.html", filepath.Join(tree, "bin", "index")); err != nil {
				t.Fatal(err)
			}
			// A link out of the tree is copied as a link, never followed.
			if err := os.Symlink("/etc/hostname", filepath.Join(tree, "outside")); err != nil {
				t.Fatal(err)
			}
			tdest := filepath.Join(base, "srv", "site")
			j, code, errOut = cl.cp("-r", tree, "-t", h.id, tdest, "--mkdir")
			r = resultsByHost(j)[h.id]
			if code != 0 || r.State != "ok" || r.Files.Changed != 8 || r.Files.Unchanged != 0 {
				t.Fatalf("tree push: exit %d %+v %s", code, r, errOut)
			}
			for _, f := range []string{"index.html", "bin/run.sh", "private/key"} {
				if got, want := sha256File(t, filepath.Join(tdest, f)), sha256File(t, filepath.Join(tree, f)); got != want {
					t.Errorf("%s: sha256 %s; want %s", f, got, want)
				}
			}
			for f, want := range map[string]os.FileMode{"bin/run.sh": 0o755, "private/key": 0o600, "private": 0o700 | os.ModeDir} {
				if st, err := os.Lstat(filepath.Join(tdest, f)); err != nil || st.Mode() != want {
					t.Errorf("%s: mode %v, %v; want %v", f, st.Mode(), err, want)
				}
			}
			for f, want := range map[string]string{"bin/index": "../index.html", "outside": "/etc/hostname"} {
				if l, err := os.Readlink(filepath.Join(tdest, f)); err != nil || l != want {
					t.Errorf("%s: link %q, %v; want %q", f, l, err, want)
				}
			}
			j, code, _ = cl.cp("-r", tree, "-t", h.id, tdest)
			if r := resultsByHost(j)[h.id]; code != 0 || r.Files.Changed != 0 || r.Files.Unchanged != 8 {
				t.Errorf("tree re-push: exit %d %+v", code, r)
			}

			// A destination that is a symlink pointing elsewhere: refused,
			// unless allowed.
			target := filepath.Join(base, "real.conf")
			writeFile(t, target, "old\n", 0o644)
			link := filepath.Join(base, "link.conf")
			os.Symlink(target, link)
			j, code, _ = cl.cp(conf, "-t", h.id, link)
			if r := resultsByHost(j)[h.id]; code != 1 || r.State != "failed" || !strings.Contains(r.Error, "symlink") {
				t.Errorf("push to a symlink: exit %d %s %q; want failed naming the symlink", code, r.State, r.Error)
			}
			if b, _ := os.ReadFile(target); string(b) != "old\n" {
				t.Errorf("the refused push wrote %q through the link", b)
			}
			j, code, _ = cl.cp(conf, "-t", h.id, link, "--follow-symlinks")
			if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" {
				t.Errorf("push to a symlink with --follow-symlinks: exit %d %+v", code, r)
			}
			if l, err := os.Readlink(link); err != nil || l != target || sha256File(t, target) != sha256File(t, conf) {
				t.Errorf("--follow-symlinks: link %q %v, target sha %s", l, err, sha256File(t, target))
			}

			// Fetch into OUTDIR/HOST/NAME.
			out := filepath.Join(t.TempDir(), "out")
			stdout, errOut, code := cl.felix("fetch", "-t", h.id, dest, out, "--no-fold") // the SAVED column
			saved := filepath.Join(out, h.id, "app.conf")
			if code != 0 || !strings.Contains(stdout, sha256File(t, dest)) || !strings.Contains(stdout, saved) {
				t.Errorf("fetch: exit %d\n%s%s", code, stdout, errOut)
			}
			if got := sha256File(t, saved); got != sha256File(t, dest) {
				t.Errorf("fetched sha256 %s; want %s", got, sha256File(t, dest))
			}
			// A symlink: refused, unless --follow-symlinks.
			stdout, _, code = cl.felix("fetch", "-t", h.id, link, out)
			if code != 1 || !strings.Contains(stdout, "symlink") {
				t.Errorf("fetch of a symlink: exit %d\n%s", code, stdout)
			}
			if _, _, code = cl.felix("fetch", "-t", h.id, link, out, "--follow-symlinks"); code != 0 ||
				sha256File(t, filepath.Join(out, h.id, "link.conf")) != sha256File(t, target) {
				t.Errorf("fetch of a symlink with --follow-symlinks: exit %d", code)
			}
			// A missing file: failed, nothing saved.
			stdout, _, code = cl.felix("fetch", "-t", h.id, filepath.Join(base, "nope"), out)
			if _, err := os.Stat(filepath.Join(out, h.id, "nope")); code != 1 || !os.IsNotExist(err) {
				t.Errorf("fetch of a missing file: exit %d, saved: %v\n%s", code, err, stdout)
			}
			// No temp file is left anywhere.
			filepath.Walk(base, func(p string, _ os.FileInfo, _ error) error {
				if strings.Contains(filepath.Base(p), model.PutTempPrefix) {
					t.Errorf("temp file left: %s", p)
				}
				return nil
			})
		})
	}

	// A push job is like exec: results stored, a signed callback with the
	// file report.
	var blob wire.Blob
	status, body := cl.apiRaw("POST", "/api/v1/content", "application/octet-stream", strings.NewReader("cb content\n"))
	if status != http.StatusCreated || json.Unmarshal(body, &blob) != nil || blob.SHA256 != sha256Bytes([]byte("cb content\n")) {
		t.Fatalf("POST content: %d %s", status, body)
	}
	cbDest := filepath.Join(t.TempDir(), "cb.txt")
	var acc wire.ExecAccepted
	if status := cl.api("POST", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"fa"},
		CallbackURL: rcv.srv.URL + "/hook"}, Dest: cbDest, SHA256: blob.SHA256}, &acc); status != http.StatusAccepted {
		t.Fatalf("POST files: %d", status)
	}
	waitFor(t, "the push's callback", 30*time.Second, func() bool { _, ok := rcv.callback(acc.JobID); return ok })
	cb, _ := rcv.callback(acc.JobID)
	if r := resultsByHost(cb.Job)["fa"]; cb.CmdType != "push" || r.State != "ok" || r.Files == nil || r.Files.Changed != 1 || r.Files.SHA256 != blob.SHA256 {
		t.Errorf("callback: %s %+v", cb.CmdType, r)
	}

	t.Run("bad input", func(t *testing.T) {
		n := jobCount(cl)
		for _, dest := range []string{"etc/app.conf", "/etc/../tmp/x", "/tmp/a\x00b", "/", "/tmp//x"} {
			var e wire.Error
			status := cl.api("POST", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"fa"}},
				Dest: dest, SHA256: blob.SHA256}, &e)
			if status != http.StatusBadRequest || !strings.Contains(e.Error, "dest") {
				t.Errorf("dest %q: %d %q; want 400 naming dest", dest, status, e.Error)
			}
		}
		if got := jobCount(cl); got != n {
			t.Errorf("bad requests stored %d jobs", got-n)
		}
		_, errOut, code := cl.felix("cp", filepath.Join(src, "missing.conf"), "-t", "fa", "/tmp/x")
		if code == 0 || !strings.Contains(errOut, "missing.conf") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("missing source: exit %d, stderr %q; want one line naming it", code, errOut)
		}
		if got := jobCount(cl); got != n {
			t.Errorf("a missing source stored %d jobs", got-n)
		}
	})

	t.Run("file roots", func(t *testing.T) {
		j, code, _ := cl.cp(conf, "-t", "fr", filepath.Join(t.TempDir(), "x.conf"))
		if r := resultsByHost(j)["fr"]; code != 1 || r.State != "failed" || !strings.Contains(r.Error, "file_roots") {
			t.Errorf("outside the roots: exit %d %s %q; want failed naming file_roots", code, r.State, r.Error)
		}
		inside := filepath.Join(root, "ok.conf")
		j, code, _ = cl.cp(conf, "-t", "fr", inside)
		if r := resultsByHost(j)["fr"]; code != 0 || r.State != "ok" || sha256File(t, inside) != sha256File(t, conf) {
			t.Errorf("inside the roots: exit %d %+v", code, r)
		}
	})

	t.Run("sha256 mismatch", func(t *testing.T) {
		// Corrupt the master's stored copy: the minion must refuse it.
		content := "the real content\n"
		var b wire.Blob
		status, body := cl.apiRaw("POST", "/api/v1/content", "application/octet-stream", strings.NewReader(content))
		if status != http.StatusCreated || json.Unmarshal(body, &b) != nil {
			t.Fatalf("POST content: %d %s", status, body)
		}
		stored := filepath.Join(cl.dir, "master", "content", b.SHA256[:2], b.SHA256)
		if err := os.WriteFile(stored, []byte("THE REAL CONTENT\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"fa", "sa"} {
			dest := filepath.Join(t.TempDir(), "m.conf")
			writeFile(t, dest, "old\n", 0o644)
			var j wire.Job
			cl.api("POST", "/api/v1/files?wait=30s", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{h}},
				Dest: dest, SHA256: b.SHA256}, &j)
			if r := resultsByHost(j)[h]; r.State != "failed" || !strings.Contains(r.Error, "sha256") {
				t.Errorf("%s: corrupted content: %s %q; want failed naming the sha256", h, r.State, r.Error)
			}
			if b, _ := os.ReadFile(dest); string(b) != "old\n" {
				t.Errorf("%s: the old file became %q", h, b)
			}
			if m, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), model.PutTempPrefix+"*")); len(m) != 0 {
				t.Errorf("%s: temp files left: %v", h, m)
			}
			if h == "fa" {
				// The master checked its copy after the failure and dropped it.
				if status, _ := cl.apiRaw("HEAD", "/api/v1/content/"+b.SHA256, "", nil); status != http.StatusNotFound {
					t.Errorf("HEAD of the damaged content = %d; want 404 (removed)", status)
				}
				// felix cp uploads it afresh, and the push succeeds.
				local := filepath.Join(t.TempDir(), "m.conf")
				writeFile(t, local, content, 0o644)
				j, code, errOut := cl.cp(local, "-t", h, dest)
				if r := resultsByHost(j)[h]; code != 0 || r.State != "ok" || sha256File(t, dest) != b.SHA256 {
					t.Errorf("push after the repair: exit %d %+v %s", code, r, errOut)
				}
				os.WriteFile(stored, []byte("THE REAL CONTENT\n"), 0o600) // damaged again, for sa
			}
		}
	})

	t.Run("minion killed mid-transfer", func(t *testing.T) {
		// Big enough that the transfer is caught in flight.
		const size = 256 << 20
		data := make([]byte, size)
		r := rand.New(rand.NewChaCha8([32]byte{7}))
		for i := 0; i < size; i += 8 {
			v := r.Uint64()
			for k := 0; k < 8; k++ {
				data[i+k] = byte(v >> (8 * k))
			}
		}
		status, body := cl.apiRaw("POST", "/api/v1/content", "application/octet-stream", bytes.NewReader(data))
		var b wire.Blob
		if status != http.StatusCreated || json.Unmarshal(body, &b) != nil {
			t.Fatalf("POST content: %d %s", status, body)
		}
		data = nil
		dir := t.TempDir()
		dest := filepath.Join(dir, "big.bin")
		writeFile(t, dest, "old\n", 0o644)
		var acc wire.ExecAccepted
		if status := cl.api("POST", "/api/v1/files", wire.PushRequest{JobOptions: wire.JobOptions{Targets: []string{"fa"}},
			Dest: dest, SHA256: b.SHA256}, &acc); status != http.StatusAccepted {
			t.Fatalf("POST files: %d", status)
		}
		var tmp string
		waitFor(t, "the temp file to grow", 60*time.Second, func() bool {
			m, _ := filepath.Glob(filepath.Join(dir, model.PutTempPrefix+"*"))
			if len(m) == 1 {
				if st, err := os.Stat(m[0]); err == nil && st.Size() > 0 {
					tmp = m[0]
					return true
				}
			}
			return false
		})
		minions["fa"].cmd.Process.Signal(syscall.SIGKILL)
		<-minions["fa"].done
		if b, _ := os.ReadFile(dest); string(b) != "old\n" {
			t.Errorf("after the kill the file is %d bytes; want the old one", len(b))
		}
		waitFor(t, "the job to end", 60*time.Second, func() bool { return cl.job(acc.JobID).State == "done" })
		if r := resultsByHost(cl.job(acc.JobID))["fa"]; r.State == "ok" {
			t.Errorf("a killed transfer ended ok: %+v", r)
		}
		// The restarted minion sweeps the temp file its crash left.
		if _, err := os.Stat(tmp); err != nil {
			t.Logf("temp file %s already gone before the restart: %v", tmp, err)
		}
		tok, _, _ := cl.felix("token", "join", "--ttl", "10m")
		cl.startMinion("fa", "127.0.0.10", strings.TrimSpace(tok))
		waitFor(t, "the temp file to be swept", 60*time.Second, func() bool {
			_, err := os.Stat(tmp)
			return os.IsNotExist(err)
		})
		if b, _ := os.ReadFile(dest); string(b) != "old\n" {
			t.Errorf("after the restart the file is %d bytes; want the old one", len(b))
		}
	})
}

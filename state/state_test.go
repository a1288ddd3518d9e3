package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/model"
)

// TestParseRefuses: every bad document is refused with its line and the
// reason, before anything could be stored.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		want      string
	}{
		{"unknown key", "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    content: x\n    colour: red\n", 6, "unknown field \"colour\""},
		{"a key of another type", "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    content: x\n    names: [x]\n", 6, "a file resource has no names"},
		{"duplicate id", "resources:\n  - {id: a, type: cmd, run: 'true'}\n  - {id: a, type: cmd, run: 'true'}\n", 3, `id "a" is used twice`},
		{"require a later one (a cycle)", "resources:\n  - {id: a, type: cmd, run: 'true', require: [b]}\n  - {id: b, type: cmd, run: 'true', require: [a]}\n", 2, `require names "b", which is not a resource before this one`},
		{"onchange itself", "resources:\n  - {id: a, type: cmd, run: 'true', onchange: [a]}\n", 2, "onchange names the resource itself"},
		{"a missing var", "vars:\n  - match: '*'\n    vars: {port: 80}\nresources:\n  - id: a\n    type: file\n    path: /etc/a\n    template: 'listen {{ .Vars.prot }}'\n", 8, ".Vars.prot is set by no vars block"},
		{"a bad template", "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    template: '{{ .Vars.x '\n", 5, "template:"},
		{"a relative path", "resources:\n  - {id: a, type: file, path: etc/a, content: x}\n", 2, "not absolute"},
		{"a .. path", "resources:\n  - id: a\n    type: dir\n    path: /etc/../root\n", 4, "not clean"},
		{"mode 999", "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    content: x\n    mode: '999'\n", 6, "want octal"},
		{"owner with shell characters", "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    content: x\n    owner: 'root;id'\n", 6, "a user or group name"},
		{"a bad package name", "resources:\n  - {id: a, type: pkg, names: ['nginx;id']}\n", 2, "nginx;id"},
		{"a bad service name", "resources:\n  - {id: a, type: service, name: 'x y', state: running}\n", 2, "service name"},
		{"an unknown type", "resources:\n  - {id: a, type: user, name: bob}\n", 2, `type "user"`},
		{"an unknown state", "resources:\n  - {id: a, type: service, name: x, state: up}\n", 2, `state "up"`},
		{"no content", "resources:\n  - {id: a, type: file, path: /etc/a}\n", 2, "needs content, template or source"},
		{"a source that is a path", "resources:\n  - {id: a, type: file, path: /etc/a, source: ./a.conf}\n", 2, "want sha256:HEX"},
		{"no resources", "vars: []\n", 0, "no resources"},
		{"not YAML", "resources: [\n", 1, ""},
		{"10 MiB", "resources:\n  - {id: a, type: file, path: /etc/a, content: '" + strings.Repeat("x", 10<<20) + "'}\n", 0, "at most 1048576"},
	} {
		_, err := Parse([]byte(tc.doc))
		var pe *Error
		if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) {
			t.Errorf("%s: %v; want line %d saying %q", tc.name, err, tc.line, tc.want)
		}
	}
}

const webDoc = `
vars:
  - match: '*'
    vars: {workers: 2, greeting: hello}
  - match: role=web
    vars: {workers: 8}
resources:
  - id: conf
    type: file
    path: /etc/app.conf
    template: |
      host {{ .Host.ID }} workers {{ .Vars.workers }} {{ .Vars.greeting }}
      os {{ .Facts.os_name }} role {{ .Labels.role }}
`

// TestRenderHostDataIsData: vars merge in order for the blocks that select
// a host; facts and labels land verbatim, never read as template text or
// run.
func TestRenderHostDataIsData(t *testing.T) {
	d, err := Parse([]byte(webDoc))
	if err != nil {
		t.Fatal(err)
	}
	vars := d.VarsFor(func(i int) bool { return true })
	rs, err := d.Render(Host{ID: "web1", Facts: map[string]any{"os_name": "{{7*7}}"}, Labels: map[string]string{"role": "$(id)"}}, vars)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *rs[0].Content, "host web1 workers 8 hello\nos {{7*7}} role $(id)\n"; got != want {
		t.Errorf("rendered %q; want %q", got, want)
	}
	tp, err := Parse([]byte("resources:\n  - {id: a, type: dir, path: '/srv/{{ .Host.ID }}/{{ .Labels.app }}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := tp.Render(Host{ID: "web1", Labels: map[string]string{"app": "shop"}}, nil); err != nil || rs[0].Path != "/srv/web1/shop" {
		t.Errorf("templated path = %v, %v; want /srv/web1/shop", rs, err)
	}
	if _, err := tp.Render(Host{ID: "web1", Labels: map[string]string{"app": "../../etc"}}, nil); err == nil || !strings.Contains(err.Error(), "not clean") {
		t.Errorf("a label leading the path out = %v; want refused as not clean", err)
	}
	if _, err := d.Render(Host{ID: "db1"}, d.VarsFor(func(i int) bool { return i == 0 })); err == nil ||
		!strings.Contains(err.Error(), "os_name") {
		t.Errorf("render without the fact: %v; want an error naming it", err)
	}
}

// localRun runs a command line on this machine, as a minion would.
func localRun(ctx context.Context, c model.Command, out model.OutputFunc) (model.Exit, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Line)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if out != nil {
		out(model.Stdout, stdout.Bytes())
		out(model.Stderr, stderr.Bytes())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return model.Exit{Code: ee.ExitCode()}, nil
	}
	return model.Exit{}, err
}

// TestApplyHere applies a document to this machine (under a temp dir)
// through a real shell and the minion's own file store: created, then
// unchanged with the file untouched, a manual edit shown as the exact
// diff by a dry run that writes nothing, a failing resource skipping only
// what requires it, and onchange running a command only after a change.
func TestApplyHere(t *testing.T) {
	dir := t.TempDir()
	doc := strings.NewReplacer("DIR", dir).Replace(`
vars:
  - match: '*'
    vars: {port: 8080}
resources:
  - id: confdir
    type: dir
    path: DIR/etc/app
    mode: "0750"
  - id: conf
    type: file
    path: DIR/etc/app/app.conf
    template: "listen {{ .Vars.port }}\nname {{ .Host.ID }}\n"
    mode: "0640"
    require: [confdir]
  - id: link
    type: symlink
    path: DIR/current
    target: DIR/etc/app
  - id: reload
    type: cmd
    run: echo reloaded >> DIR/reloads
    onchange: [conf]
  - id: init
    type: cmd
    run: touch DIR/initialised
    creates: DIR/initialised
  - id: broken
    type: cmd
    run: echo no >&2; exit 3
  - id: after-broken
    type: cmd
    run: touch DIR/never
    require: [broken]
  - id: independent
    type: cmd
    run: touch DIR/independent
    unless: test -e DIR/independent
  - id: blob
    type: file
    path: DIR/blob.bin
    source: sha256:SHA
`)
	blob := []byte("binary\x00content\n")
	sum := sha256.Sum256(blob)
	sha := hex.EncodeToString(sum[:])
	doc = strings.ReplaceAll(doc, "SHA", sha)
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Sources(); len(got) != 1 || got[0] != sha {
		t.Errorf("Sources = %q; want the blob's", got)
	}
	stored := func(s string) (io.ReadCloser, int64, error) {
		if s != sha {
			return nil, 0, os.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(blob)), int64(len(blob)), nil
	}
	store := &hostfile.Store{}
	apply := func(dry bool) *model.ApplyReport {
		t.Helper()
		a := &model.Apply{Spec: &model.ApplySpec{Document: doc, DryRun: dry}, Render: func(context.Context, model.Target) ([]model.Resource, error) {
			return d.Render(Host{ID: "here"}, d.VarsFor(func(int) bool { return true }))
		}, Content: stored}
		x, err := Run(context.Background(), localRun, store.Put, model.Target{ID: "here"}, a, nil)
		// broken fails (a dry run only says it would run)
		if want := map[bool]int{false: 1, true: 0}[dry]; err != nil || x.Apply == nil || x.Code != want {
			t.Fatalf("apply (dry run %v): exit %d, %v, %+v; want exit %d", dry, x.Code, err, x.Apply, want)
		}
		return x.Apply
	}
	states := func(rep *model.ApplyReport) string {
		var s []string
		for _, r := range rep.Resources {
			s = append(s, r.ID+"="+r.State)
		}
		return strings.Join(s, " ")
	}
	rep := apply(false)
	if got, want := states(rep), "confdir=changed conf=changed link=changed reload=changed init=changed broken=failed after-broken=skipped independent=changed blob=changed"; got != want {
		t.Fatalf("first apply: %s\nwant %s\n%+v", got, want, rep)
	}
	conf := filepath.Join(dir, "etc", "app", "app.conf")
	b, _ := os.ReadFile(conf)
	fi, _ := os.Stat(conf)
	if string(b) != "listen 8080\nname here\n" || fi.Mode().Perm() != 0o640 {
		t.Errorf("app.conf = %q, %v", b, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a resource requiring the failed one ran")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "blob.bin")); !bytes.Equal(b, blob) || rep.Resources[8].Diff != "Binary files /dev/null and "+filepath.Join(dir, "blob.bin")+" differ\n" {
		t.Errorf("blob.bin = %q, diff %q; want the stored content, a binary diff", b, rep.Resources[8].Diff)
	}
	before := fi.Sys().(*syscall.Stat_t)

	rep = apply(false)
	if got, want := states(rep), "confdir=unchanged conf=unchanged link=unchanged reload=unchanged init=unchanged broken=failed after-broken=skipped independent=unchanged blob=unchanged"; got != want {
		t.Errorf("second apply: %s\nwant %s", got, want)
	}
	fi, _ = os.Stat(conf)
	if after := fi.Sys().(*syscall.Stat_t); after.Ino != before.Ino || after.Mtim != before.Mtim {
		t.Error("the second apply rewrote app.conf")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "reloads")); string(b) != "reloaded\n" {
		t.Errorf("reloads = %q; want one reload, after the first change only", b)
	}

	os.WriteFile(conf, []byte("listen 9090\nname here\n"), 0o640)
	rep = apply(true)
	if rep.Resources[1].State != model.ResChanged || !strings.Contains(rep.Resources[1].Diff, "-listen 9090\n+listen 8080\n") ||
		rep.Resources[3].State != model.ResChanged || rep.Resources[3].Detail != "would run" || !rep.DryRun {
		t.Errorf("dry run after an edit: %+v", rep.Resources)
	}
	if b, _ := os.ReadFile(conf); string(b) != "listen 9090\nname here\n" {
		t.Errorf("the dry run wrote app.conf: %q", b)
	}
}

// TestResolveSources: local paths named as sources become the sha256 the
// resolver gives, in block and flow style, plain and quoted, comments and
// layout kept; content already named by sha256 is left alone.
func TestResolveSources(t *testing.T) {
	sha := strings.Repeat("a", 64)
	doc := `# web state
resources:
  - id: a
    type: file
    path: /etc/a
    source: files/a.conf   # the main config
  - {id: b, type: file, path: /etc/b, source: "files/b c.conf"}
  - {id: c, type: file, path: /etc/c, source: 'it''s.conf'}
  - {id: d, type: file, path: /etc/d, source: sha256:` + strings.Repeat("b", 64) + `}
`
	var asked []string
	got, err := ResolveSources([]byte(doc), func(p string) (string, error) {
		asked = append(asked, p)
		return sha, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("files/a.conf", "sha256:"+sha, `"files/b c.conf"`, "sha256:"+sha, `'it''s.conf'`, "sha256:"+sha).Replace(doc)
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	if strings.Join(asked, "|") != "files/a.conf|files/b c.conf|it's.conf" {
		t.Errorf("resolved %q", asked)
	}
	if _, err := Parse(got); err != nil {
		t.Errorf("the rewritten document does not parse: %v", err)
	}
	_, err = ResolveSources([]byte("resources:\n  - {id: a, type: file, path: /etc/a, source: nope}\n"), func(string) (string, error) {
		return "", os.ErrNotExist
	})
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Errorf("a missing file: %v; want an error on line 2", err)
	}
}

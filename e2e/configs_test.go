package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigStore stores state documents through the real CLI and master
// and applies one by name: revisions kept, an unchanged put no new
// revision, get byte for byte at any revision, list, history, a bad
// document refused with its line and nothing stored, a source uploaded
// and applied, rm.
func TestConfigStore(t *testing.T) {
	c := startMaster(t)
	c.joinAll("cs1")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	writeFile(t, filepath.Join(dir, "files", "banner"), "hello from the store\n", 0o644)
	v1 := "# the web state\nresources:\n  - id: banner\n    type: file\n    path: " + out + "/banner\n    source: files/banner   # uploaded\n"
	v2 := v1 + "  - {id: marker, type: dir, path: " + out + "/v2}\n"
	doc := filepath.Join(dir, "web.yaml")
	put := func(body, want string) {
		t.Helper()
		writeFile(t, doc, body, 0o644)
		o, e, code := c.felix("config", "put", "web", doc)
		if code != 0 || !strings.Contains(o, want) {
			t.Fatalf("config put: exit %d %q %q; want %q", code, o, e, want)
		}
	}
	put(v1, "config web: revision 1")
	put(v1, "config web: unchanged at revision 1")
	put(v2, "config web: revision 2")

	got, _, code := c.felix("config", "get", "web", "--rev", "1")
	if code != 0 || !strings.HasPrefix(got, "# the web state\n") || !strings.Contains(got, "source: sha256:") ||
		!strings.Contains(got, "# uploaded") || strings.Contains(got, "files/banner") {
		t.Errorf("config get --rev 1: exit %d:\n%s\nwant the document with the source's sha256 in place of its path, comments kept", code, got)
	}
	// A document without sources is stored as sent: get gives back its
	// bytes exactly (CRLF, no final newline, a tab and UTF-8 in comments).
	plain := "# plain — kept as is\r\nresources:\r\n  - {id: a, type: cmd, run: 'true'}\t# x"
	plainFile := filepath.Join(dir, "plain.yaml")
	writeFile(t, plainFile, plain, 0o644)
	if o, e, code := c.felix("config", "put", "plain", plainFile); code != 0 || !strings.HasPrefix(o, "config plain: revision 1 (sha256 ") {
		t.Fatalf("config put plain: exit %d %q %q", code, o, e)
	}
	writeFile(t, plainFile, "resources:\n  - {id: b, type: cmd, run: 'true'}\n", 0o644)
	if o, e, code := c.felix("config", "put", "plain", plainFile); code != 0 || !strings.HasPrefix(o, "config plain: revision 2 ") {
		t.Fatalf("config put plain again: exit %d %q %q", code, o, e)
	}
	if got, e, code := c.felix("config", "get", "plain", "--rev", "1"); code != 0 || got != plain {
		t.Errorf("config get plain --rev 1: exit %d %q\n%q\nwant exactly\n%q", code, e, got, plain)
	}

	if o, _, code := c.felix("config", "list"); code != 0 || !strings.Contains(o, "│ web   │   2 │         2 │") ||
		!strings.Contains(o, "│ plain │   2 │         2 │") {
		t.Errorf("config list: exit %d:\n%s", code, o)
	}
	if o, _, code := c.felix("config", "list", "-o", "json"); code != 0 || !strings.Contains(o, `"name": "plain"`) || !strings.Contains(o, `"revisions": 2`) {
		t.Errorf("config list -o json: exit %d:\n%s", code, o)
	}
	if o, _, code := c.felix("config", "history", "web"); code != 0 || strings.Count(o, "admin") != 2 {
		t.Errorf("config history: exit %d:\n%s", code, o)
	}

	// A bad document: one line on stderr with the line, nothing stored.
	writeFile(t, doc, "resources:\n  - id: a\n    type: cmd\n    run: 'true'\n    colour: red\n", 0o644)
	if o, e, code := c.felix("config", "put", "web", doc); code != 1 || !strings.Contains(e, "line 5") || strings.Count(strings.TrimSpace(e), "\n") != 0 {
		t.Errorf("a bad document: exit %d %q %q; want one line naming line 5", code, o, e)
	}
	if o, _, _ := c.felix("config", "history", "web"); strings.Count(o, "admin") != 2 {
		t.Errorf("a refused put stored a revision:\n%s", o)
	}

	// Applied by name: the latest revision, the source's content placed.
	if o, e, code := c.felix("apply", "web", "-t", "cs1"); code != 0 || !strings.Contains(o, "2 changed") {
		t.Errorf("apply web: exit %d:\n%s%s", code, o, e)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "banner")); string(b) != "hello from the store\n" {
		t.Errorf("the banner = %q", b)
	}
	if o, e, code := c.felix("apply", "web", "--rev", "1", "-t", "cs1", "--check"); code != 0 {
		t.Errorf("apply web --rev 1 --check: exit %d; want 0 (nothing to change):\n%s%s", code, o, e)
	}

	if o, _, code := c.felix("config", "rm", "web"); code != 0 || !strings.Contains(o, "removed") {
		t.Errorf("config rm: exit %d %q", code, o)
	}
	if _, e, code := c.felix("config", "get", "web"); code != 1 || !strings.Contains(e, "config web") {
		t.Errorf("config get after rm: exit %d %q; want 1, not found", code, e)
	}
}

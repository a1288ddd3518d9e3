package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// configsFake is a master holding stored state documents in memory as the
// real one does: revisions numbered from 1, a put of the latest body again
// answered 200 with that revision, a document with an unknown key refused
// naming its line.
type configsFake struct {
	srv *httptest.Server

	mu   sync.Mutex          // protects the fields below
	revs map[string][]string // each name's bodies, revision i+1 at i
	reqs []string            // "METHOD /path?query" of every request
}

// configsFakeAt is when the fake says every revision was stored.
var configsFakeAt = time.Date(2026, 12, 5, 7, 30, 0, 0, time.UTC)

func newConfigsFake(t *testing.T) *configsFake {
	t.Helper()
	f := &configsFake{revs: map[string][]string{}}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	view := func(name string, rev int) wire.Config {
		sum := sha256.Sum256([]byte(f.revs[name][rev-1]))
		return wire.Config{Name: name, Rev: rev, SHA256: hex.EncodeToString(sum[:]), CreatedBy: "alice", CreatedAt: configsFakeAt}
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			reply(w, 401, wire.Error{Error: "api token: invalid or expired token"})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
		name, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/api/v1/configs/"), "/")
		revs := f.revs[name]
		switch {
		case r.URL.Path == "/api/v1/configs" && r.Method == "POST":
			var req wire.ConfigPut
			json.NewDecoder(r.Body).Decode(&req)
			if i := strings.Index(req.Document, "colour:"); i >= 0 {
				line := strings.Count(req.Document[:i], "\n") + 1
				reply(w, 400, wire.Error{Error: "state document: line " + strconv.Itoa(line) + ": resource a: unknown key colour"})
				return
			}
			revs := f.revs[req.Name]
			if len(revs) > 0 && revs[len(revs)-1] == req.Document {
				reply(w, 200, view(req.Name, len(revs)))
				return
			}
			f.revs[req.Name] = append(revs, req.Document)
			reply(w, 201, view(req.Name, len(revs)+1))
		case r.URL.Path == "/api/v1/configs" && r.Method == "GET":
			list := wire.ConfigList{Configs: []wire.Config{}}
			for _, n := range []string{"db", "web"} {
				if len(f.revs[n]) > 0 {
					c := view(n, len(f.revs[n]))
					c.Revisions = len(f.revs[n])
					list.Configs = append(list.Configs, c)
				}
			}
			reply(w, 200, list)
		case len(revs) == 0:
			reply(w, 404, wire.Error{Error: "config " + name + ": not found"})
		case sub == "" && r.Method == "GET":
			rev := len(revs)
			if v := r.URL.Query().Get("rev"); v != "" {
				rev, _ = strconv.Atoi(v)
			}
			if rev < 1 || rev > len(revs) {
				reply(w, 404, wire.Error{Error: "config " + name + " revision " + strconv.Itoa(rev) + ": not found"})
				return
			}
			c := view(name, rev)
			c.Document = &revs[rev-1]
			reply(w, 200, c)
		case sub == "history" && r.Method == "GET":
			h := wire.ConfigHistory{Name: name}
			for rev := len(revs); rev > 0; rev-- {
				h.Revisions = append(h.Revisions, view(name, rev))
			}
			reply(w, 200, h)
		case sub == "" && r.Method == "DELETE":
			delete(f.revs, name)
			w.WriteHeader(204)
		default:
			reply(w, 404, wire.Error{Error: "no such endpoint"})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// take returns the requests since the last take.
func (f *configsFake) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

// TestConfigCommands runs felix config against the fake, step by step:
// puts (new, unchanged, changed), get byte for byte by revision, list and
// history tables and JSON, rm; bad input is one line on stderr, exit 1,
// and a file over the limit or a usage error sends nothing.
func TestConfigCommands(t *testing.T) {
	f := newConfigsFake(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// No final newline, CRLF line ends, a tab and UTF-8 in a comment:
	// get must give back exactly these bytes.
	v1 := "# web — the first\r\nresources:\r\n  - {id: a, type: cmd, run: 'true'}\t# x"
	v2 := "resources:\n  - {id: a, type: cmd, run: 'false'}\n"
	sum1 := sha256.Sum256([]byte(v1))
	sha1 := hex.EncodeToString(sum1[:])
	created := configsFakeAt.Local().Format(time.DateTime)
	big := write("big.yaml", strings.Repeat("#", model.MaxConfigSize+1))

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout; exactOut replaces them when set
		exactOut *string
		wantErr  string   // substring of the single line on stderr
		wantReqs []string // the requests sent, in order
	}{
		{"put new", []string{"config", "put", "web", write("v1.yaml", v1)}, 0,
			[]string{"config web: revision 1 (sha256 " + sha1[:12] + ")\n"}, nil, "", []string{"POST /api/v1/configs"}},
		{"put unchanged", []string{"config", "put", "web", write("v1.yaml", v1)}, 0,
			[]string{"config web: unchanged at revision 1"}, nil, "", []string{"POST /api/v1/configs"}},
		{"put changed", []string{"config", "put", "web", write("v2.yaml", v2)}, 0,
			[]string{"config web: revision 2"}, nil, "", []string{"POST /api/v1/configs"}},
		{"put json", []string{"config", "put", "db", write("db.yaml", v2), "-o", "json"}, 0,
			[]string{`"name": "db"`, `"rev": 1`, `"created_by": "alice"`}, nil, "", []string{"POST /api/v1/configs"}},
		{"get a revision byte for byte", []string{"config", "get", "web", "--rev", "1"}, 0,
			nil, &v1, "", []string{"GET /api/v1/configs/web?rev=1"}},
		{"get the latest", []string{"config", "get", "web"}, 0,
			nil, &v2, "", []string{"GET /api/v1/configs/web"}},
		{"get json", []string{"config", "get", "web", "-o", "json"}, 0,
			[]string{`"rev": 2`, `"document": "resources:\n`}, nil, "", []string{"GET /api/v1/configs/web"}},
		{"get an unknown revision", []string{"config", "get", "web", "--rev", "9"}, 1,
			nil, nil, "config web revision 9: not found (HTTP 404)", []string{"GET /api/v1/configs/web?rev=9"}},
		{"list", []string{"config", "list"}, 0,
			[]string{"NAME", "REV", "REVISIONS", "SHA256", "BY", "CREATED", "│ web  │   2 │         2 │", "│ db   │   1 │         1 │",
				"alice", created}, nil, "", []string{"GET /api/v1/configs"}},
		{"list json", []string{"config", "list", "-o", "json"}, 0,
			[]string{`"configs": [`, `"revisions": 2`}, nil, "", []string{"GET /api/v1/configs"}},
		{"history", []string{"config", "history", "web"}, 0,
			[]string{"REV", "SHA256", "BY", "CREATED", "│   2 │", "│   1 │ " + sha1[:12] + " │ alice │ " + created}, nil, "",
			[]string{"GET /api/v1/configs/web/history"}},
		{"history json", []string{"config", "history", "web", "-o", "json"}, 0,
			[]string{`"name": "web"`, `"revisions": [`}, nil, "", []string{"GET /api/v1/configs/web/history"}},
		{"history of nothing", []string{"config", "history", "nope"}, 1,
			nil, nil, "config nope: not found (HTTP 404)", []string{"GET /api/v1/configs/nope/history"}},
		{"a document the master refuses", []string{"config", "put", "web",
			write("bad.yaml", "resources:\n  - id: a\n    type: cmd\n    run: 'true'\n    colour: red\n")}, 1,
			nil, nil, "line 5", []string{"POST /api/v1/configs"}},
		{"a file over the limit", []string{"config", "put", "web", big}, 1,
			nil, nil, "a state document is at most 1048576", nil},
		{"a missing file", []string{"config", "put", "web", filepath.Join(dir, "none.yaml")}, 1,
			nil, nil, "no such file", nil},
		{"a directory", []string{"config", "put", "web", dir}, 1,
			nil, nil, "is not a file", nil},
		{"--rev elsewhere", []string{"config", "history", "web", "--rev", "1"}, 1,
			nil, nil, "--rev is for felix config get", nil},
		{"no sub-command", []string{"config"}, 1,
			nil, nil, "want felix config put NAME FILE", nil},
		{"put without a file", []string{"config", "put", "web"}, 1,
			nil, nil, "want felix config put NAME FILE", nil},
		{"an unknown sub-command", []string{"config", "show", "web"}, 2,
			nil, nil, `unknown command "show" for "felix config"; want get, history, list, put or rm`, nil},
		{"rm", []string{"config", "rm", "web"}, 0,
			[]string{"config web: removed with every revision"}, nil, "", []string{"DELETE /api/v1/configs/web"}},
		{"rm again", []string{"config", "rm", "web"}, 1,
			nil, nil, "config web: not found (HTTP 404)", []string{"DELETE /api/v1/configs/web"}},
		{"get after rm", []string{"config", "get", "web"}, 1,
			nil, nil, "config web: not found (HTTP 404)", []string{"GET /api/v1/configs/web"}},
	}
	for _, tt := range tests { // in order: each step sees the ones before
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit = %d; want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if tt.exactOut != nil && stdout != *tt.exactOut {
				t.Errorf("stdout = %q; want exactly %q", stdout, *tt.exactOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if tt.wantErr == "" && stderr != "" {
				t.Errorf("stderr = %q; want nothing", stderr)
			}
			if tt.wantErr != "" && (!strings.Contains(stderr, tt.wantErr) || strings.Count(strings.TrimSpace(stderr), "\n") > 0) {
				t.Errorf("stderr = %q; want one line saying %q", stderr, tt.wantErr)
			}
			if got := f.take(); strings.Join(got, "\n") != strings.Join(tt.wantReqs, "\n") {
				t.Errorf("requests sent = %q; want %q", got, tt.wantReqs)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.revs["web"]); n != 0 {
		t.Errorf("web has %d revisions after rm; want none", n)
	}
}

// run runs felix with args, the connection flags after the command name.
func (f *configsFake) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runAt(t, f.srv, args...)
}

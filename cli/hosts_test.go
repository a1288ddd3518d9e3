package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
)

// hostsFake answers the agentless-host routes and exec like the master and
// records every request with its body.
type hostsFake struct {
	srv *httptest.Server

	mu   sync.Mutex // protects reqs
	reqs []recorded
}

type recorded struct {
	Line        string // "METHOD /path?query"
	ContentType string
	Body        string
}

var fakeHosts = []wire.Host{
	{ID: "10.0.0.7", Host: "10.0.0.7", Port: 22, User: "deploy", Key: "/etc/felix/keys/id_ed25519", Become: true,
		Labels: map[string]string{"role": "db", "group": "db"}},
	{ID: "web01", Host: "web01.example", Port: 2222, Minion: "accepted"},
}

func newHostsFake(t *testing.T) *hostsFake {
	t.Helper()
	f := &hostsFake{}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{Line: r.Method + " " + r.URL.RequestURI(), ContentType: r.Header.Get("Content-Type"), Body: string(body)})
		f.mu.Unlock()
		p := r.URL.Path
		switch {
		case p == "/api/v1/hosts" && r.Method == "GET":
			reply(w, 200, wire.HostList{Hosts: fakeHosts})
		case p == "/api/v1/hosts" && r.Method == "POST":
			var req wire.HostRequest
			json.Unmarshal(body, &req)
			if req.Host == "taken.example" && r.URL.Query().Get("replace") != "true" {
				reply(w, 409, wire.Error{Error: "host taken.example already exists: conflict"})
				return
			}
			id := req.ID
			if id == "" {
				id = req.Host
			}
			port := req.Port
			if port == 0 {
				port = 22
			}
			reply(w, 201, wire.Host{ID: id, Host: req.Host, Port: port, User: req.User, Key: req.Key, Become: req.Become || req.BecomeUser != "", BecomeUser: req.BecomeUser, Labels: req.Labels,
				ProxyJump: req.ProxyJump})
		case p == "/api/v1/hosts/import":
			if strings.Contains(string(body), ";") {
				reply(w, 400, wire.ImportResult{Errors: []wire.ImportError{{Line: 2, Error: "bad"}}, Error: "line 2: host \"a;b\": character ';' is not allowed; nothing imported"})
				return
			}
			reply(w, 200, wire.ImportResult{Added: 2, Updated: 1, Errors: []wire.ImportError{}})
		case p == "/api/v1/hosts/facts":
			gathered := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			reply(w, 200, wire.HostFactsList{Hosts: []wire.HostFacts{
				{ID: "deb1", Facts: json.RawMessage(`{"os_name":"debian","os_version":"12","kernel":"6.1.0","arch":"x86_64","cpus":2}`), GatheredAt: &gathered},
				{ID: "down", Error: "facts of down: dial tcp 127.0.0.9:22: connection refused"}}})
		case p == "/api/v1/hosts/w1" && r.Method == "GET":
			gathered := time.Now().Add(-time.Hour)
			reply(w, 200, wire.Host{ID: "w1", Host: "10.0.0.1", Port: 22, Groups: []string{"web", "prod"},
				Facts: json.RawMessage(`{"os_name":"debian","arch":"x86_64"}`), FactsGatheredAt: &gathered, FactsError: "\x1b[2Jlater failure"})
		case strings.HasSuffix(p, "/trust"):
			var req wire.TrustRequest
			json.Unmarshal(body, &req)
			port := req.Port
			if port == 0 {
				port = 22
			}
			host := strings.TrimSuffix(strings.TrimPrefix(p, "/api/v1/hosts/"), "/trust")
			reply(w, 200, wire.Trusted{ID: host, Host: host, Port: port, Fingerprint: req.Fingerprint})
		case strings.HasSuffix(p, "/labels"):
			reply(w, 200, wire.Host{ID: "web01", Host: "web01.example", Port: 22, Labels: map[string]string{"zone": "eu"}})
		case strings.HasPrefix(p, "/api/v1/hosts/") && r.Method == "DELETE":
			if strings.HasSuffix(p, "/nosuch") {
				reply(w, 404, wire.Error{Error: "host nosuch: not found"})
				return
			}
			reply(w, 200, map[string]any{"deleted": true})
		case p == "/api/v1/exec":
			var req wire.ExecRequest
			json.Unmarshal(body, &req)
			reply(w, 200, wire.DryRun{Targets: req.Targets, Hosts: []wire.DryRunHost{
				{Host: "db9", Address: "10.0.1.9:22", State: "would run", Transport: "ssh"},
				{Host: "web01", Address: "10.0.0.1:4510", State: "would run", Transport: "agent", Fallback: "ssh"},
				{Host: "web02", Address: "10.0.0.2:4510", State: "unreachable", Error: "no ssh settings for web02"}}})
		default:
			reply(w, 404, wire.Error{Error: "no such endpoint"})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *hostsFake) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runAt(t, f.srv, args...)
}

func (f *hostsFake) take() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func writeHostsFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostsCommands(t *testing.T) {
	f := newHostsFake(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts.ini")
	writeHostsFile(t, inv, "[web]\nweb1 ansible_host=10.0.0.1\n")
	bad := filepath.Join(dir, "bad.txt")
	writeHostsFile(t, bad, "ok.example\na;b\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of the one line on stderr
		wantReqs []string // requests made, in order
		wantBody []string // substrings of the last request's body
	}{
		{name: "list table", args: []string{"hosts"}, wantOut: []string{"ID", "ADDRESS", "USER", "KEY", "LABELS",
			"10.0.0.7:22", "deploy +sudo", "/etc/felix/keys/id_ed25519", "group=db,role=db", "web01 (minion accepted)",
			"web01.example:2222", "(default)"}, wantReqs: []string{"GET /api/v1/hosts"}},
		{name: "list explicit", args: []string{"hosts", "list"}, wantOut: []string{"web01"}, wantReqs: []string{"GET /api/v1/hosts"}},
		{name: "list json", args: []string{"hosts", "list", "-o", "json"}, wantOut: []string{`"id": "web01"`, `"minion": "accepted"`},
			wantReqs: []string{"GET /api/v1/hosts"}},
		{name: "add with flags", args: []string{"hosts", "add", "10.0.0.9", "--user", "root", "--port", "2200", "--key",
			"/etc/felix/k", "--become", "--label", "role=db", "--label", "zone=eu", "--id", "db9"},
			wantOut: []string{"db9", "10.0.0.9:2200", "root +sudo", "role=db,zone=eu"}, wantReqs: []string{"POST /api/v1/hosts"},
			wantBody: []string{`"id":"db9"`, `"host":"10.0.0.9"`, `"port":2200`, `"user":"root"`, `"key":"/etc/felix/k"`, `"become":true`}},
		{name: "add become-user", args: []string{"hosts", "add", "db8", "--user", "ops", "--become-user", "postgres"},
			wantOut: []string{"db8", "ops +sudo -u postgres"}, wantReqs: []string{"POST /api/v1/hosts"},
			wantBody: []string{`"user":"ops"`, `"become_user":"postgres"`}},
		{name: "add bad become-user", args: []string{"hosts", "add", "db8", "--become-user", "pg;id"}, wantCode: 1,
			wantErr: `--become-user: user "pg;id"`},
		{name: "become-user is for add", args: []string{"hosts", "list", "--become-user", "pg"}, wantCode: 1,
			wantErr: "--become-user is for felix hosts add"},
		{name: "add user@host:port", args: []string{"hosts", "add", "deploy@db9.example:2222"}, wantOut: []string{"db9.example:2222", "deploy"},
			wantReqs: []string{"POST /api/v1/hosts"}, wantBody: []string{`"host":"db9.example"`, `"port":2222`, `"user":"deploy"`}},
		{name: "add ipv6 with port", args: []string{"hosts", "add", "[fd00::9]:2222", "--id", "v6"}, wantOut: []string{"[fd00::9]:2222"},
			wantReqs: []string{"POST /api/v1/hosts"}, wantBody: []string{`"host":"fd00::9"`}},
		{name: "add replace", args: []string{"hosts", "add", "taken.example", "--replace"}, wantReqs: []string{"POST /api/v1/hosts?replace=true"}},
		{name: "add conflict", args: []string{"hosts", "add", "taken.example"}, wantCode: 1, wantErr: "already exists: conflict (HTTP 409)",
			wantReqs: []string{"POST /api/v1/hosts"}},
		{name: "add remote-tmp", args: []string{"hosts", "add", "h1", "--remote-tmp", "~/.ansible/tmp"}, wantOut: []string{"h1"},
			wantReqs: []string{"POST /api/v1/hosts"}, wantBody: []string{`"remote_tmp":"~/.ansible/tmp"`}},
		{name: "add relative remote-tmp", args: []string{"hosts", "add", "h1", "--remote-tmp", "rel/dir"}, wantCode: 1,
			wantErr: `--remote-tmp: remote_tmp "rel/dir": want an absolute path`},
		{name: "add remote-tmp with ..", args: []string{"hosts", "add", "h1", "--remote-tmp", "/tmp/../x"}, wantCode: 1,
			wantErr: "a .. element is not allowed"},
		{name: "remote-tmp on list", args: []string{"hosts", "list", "--remote-tmp", "/x"}, wantCode: 1, wantErr: "--remote-tmp is for felix hosts add"},
		{name: "add through jump hosts", args: []string{"hosts", "add", "10.0.0.9", "--proxy-jump", "ops@bastion:2222,[fd00::1]"},
			wantOut: []string{"10.0.0.9:22 via ops@bastion:2222,[fd00::1]"}, wantReqs: []string{"POST /api/v1/hosts"},
			wantBody: []string{`"proxy_jump":"ops@bastion:2222,[fd00::1]"`}},
		{name: "add bad jump host", args: []string{"hosts", "add", "10.0.0.9", "--proxy-jump", "bastion -oProxyCommand=id"}, wantCode: 1, wantErr: "not allowed"},
		{name: "add two users", args: []string{"hosts", "add", "root@h1", "--user", "deploy"}, wantCode: 1, wantErr: "user given twice"},
		{name: "add bad host", args: []string{"hosts", "add", "h1;reboot"}, wantCode: 1, wantErr: "';'"},
		{name: "add bad label", args: []string{"hosts", "add", "h1", "--label", "role"}, wantCode: 1, wantErr: "want key=value"},
		{name: "add without host", args: []string{"hosts", "add"}, wantCode: 1, wantErr: "want: felix hosts add HOST"},
		{name: "add flag on list", args: []string{"hosts", "list", "--user", "root"}, wantCode: 1, wantErr: "--user is for felix hosts add"},
		{name: "import", args: []string{"hosts", "import", inv}, wantOut: []string{"2 hosts added, 1 updated"},
			wantReqs: []string{"POST /api/v1/hosts/import"}, wantBody: []string{"[web]\nweb1 ansible_host=10.0.0.1\n"}},
		{name: "import refused", args: []string{"hosts", "import", bad}, wantCode: 1, wantErr: "line 2:",
			wantReqs: []string{"POST /api/v1/hosts/import"}},
		{name: "import yaml", args: []string{"hosts", "import", inv, "--format", "yaml"}, wantOut: []string{"2 hosts added"},
			wantReqs: []string{"POST /api/v1/hosts/import?format=yaml"}},
		{name: "format on list", args: []string{"hosts", "list", "--format", "yaml"}, wantCode: 1, wantErr: "--format is for felix hosts import"},
		{name: "show", args: []string{"hosts", "show", "w1"}, wantOut: []string{"groups", "web, prod", "facts.os_name", "debian", "facts.arch",
			"facts error", `\x1b[2Jlater failure`, "1h"}, wantReqs: []string{"GET /api/v1/hosts/w1"}},
		{name: "show without id", args: []string{"hosts", "show"}, wantCode: 1, wantErr: "want: felix hosts show ID"},
		{name: "facts stored", args: []string{"hosts", "facts"}, wantOut: []string{"ID", "OS", "GATHERED", "web01", "never"},
			wantReqs: []string{"GET /api/v1/hosts"}},
		{name: "facts gathered", args: []string{"hosts", "facts", "-t", "deb1,down"}, wantCode: 1,
			wantOut:  []string{"debian 12", "6.1.0", "x86_64", "connection refused"},
			wantReqs: []string{"POST /api/v1/hosts/facts"}, wantBody: []string{`{"targets":["deb1","down"]}`}},
		{name: "facts json", args: []string{"hosts", "facts", "-t", "deb1", "-o", "json"}, wantOut: []string{`"os_name": "debian"`, `"gathered_at"`},
			wantReqs: []string{"POST /api/v1/hosts/facts"}},
		{name: "target on list", args: []string{"hosts", "list", "-t", "x"}, wantCode: 1, wantErr: "--target is for felix hosts facts"},
		{name: "import missing file", args: []string{"hosts", "import", filepath.Join(dir, "nope")}, wantCode: 1, wantErr: "no such file"},
		{name: "rm", args: []string{"hosts", "rm", "a", "b"}, wantOut: []string{"a: removed", "b: removed"},
			wantReqs: []string{"DELETE /api/v1/hosts/a", "DELETE /api/v1/hosts/b"}},
		{name: "rm unknown", args: []string{"hosts", "rm", "nosuch", "a"}, wantCode: 1, wantOut: []string{"a: removed"}, wantErr: "not found",
			wantReqs: []string{"DELETE /api/v1/hosts/nosuch", "DELETE /api/v1/hosts/a"}},
		{name: "rm nothing", args: []string{"hosts", "rm"}, wantCode: 1, wantErr: "at least one"},
		{name: "label", args: []string{"hosts", "label", "web01", "zone=eu", "-tier"}, wantOut: []string{"zone=eu"},
			wantReqs: []string{"PUT /api/v1/hosts/web01/labels"}, wantBody: []string{`"set":{"zone":"eu"}`, `"remove":["tier"]`}},
		{name: "trust with port", args: []string{"hosts", "trust", "10.0.0.7:2222", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"},
			wantOut:  []string{"10.0.0.7:2222: trusted SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"},
			wantReqs: []string{"POST /api/v1/hosts/10.0.0.7/trust"}, wantBody: []string{`"port":2222`}},
		{name: "trust by id", args: []string{"hosts", "trust", "web01", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"},
			wantReqs: []string{"POST /api/v1/hosts/web01/trust"}},
		{name: "trust bad fingerprint", args: []string{"hosts", "trust", "web01", "MD5:aa:bb"}, wantCode: 1, wantErr: "SHA256"},
		{name: "trust with user", args: []string{"hosts", "trust", "root@web01", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"},
			wantCode: 1, wantErr: "want HOST[:PORT]"},
		{name: "trust without fingerprint", args: []string{"hosts", "trust", "web01"}, wantCode: 1, wantErr: "want: felix hosts trust"},
		{name: "unknown sub-command", args: []string{"hosts", "frob"}, wantCode: 2, wantErr: `unknown command "frob" for "felix hosts"; want add, facts,`},
		{name: "exec transport", args: []string{"exec", "-t", "*", "--transport", "ssh", "--dry-run", "--", "true"},
			wantOut:  []string{"TRANSPORT", "agent, else ssh", "unreachable", "no ssh settings for web02", "2 of 3 hosts would run"},
			wantReqs: []string{"POST /api/v1/exec?dry_run=true"}, wantBody: []string{`"transport":"ssh"`}},
		{name: "exec bad transport", args: []string{"exec", "-t", "*", "--transport", "rsh", "--", "true"}, wantCode: 1,
			wantErr: `--transport "rsh": want auto, agent or ssh`},
		{name: "exec per-run login and sudo", args: []string{"exec", "-t", "*", "--user", "ops", "--become", "--dry-run", "--", "true"},
			wantReqs: []string{"POST /api/v1/exec?dry_run=true"}, wantBody: []string{`"ssh_user":"ops"`, `"become":true`}},
		{name: "exec per-run become user", args: []string{"exec", "-t", "*", "--become-user", "app", "--dry-run", "--", "id", "-un"},
			wantReqs: []string{"POST /api/v1/exec?dry_run=true"}, wantBody: []string{`"become_user":"app"`}},
		{name: "exec bad become user", args: []string{"exec", "-t", "*", "--become-user", "-s", "--", "true"}, wantCode: 1,
			wantErr: `--become-user: user "-s"`},
		{name: "exec bad per-run login", args: []string{"exec", "-t", "*", "--user", "root;id", "--", "true"}, wantCode: 1,
			wantErr: `--user: user "root;id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.take()
			code, stdout, stderr := f.run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit = %d; want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if tt.wantErr != "" && !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q; want it to contain %q", stderr, tt.wantErr)
			}
			if tt.wantCode != 0 && tt.name != "rm unknown" && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("stderr has more than one line: %q", stderr)
			}
			reqs := f.take()
			var lines []string
			for _, r := range reqs {
				lines = append(lines, r.Line)
			}
			if strings.Join(lines, "; ") != strings.Join(tt.wantReqs, "; ") {
				t.Errorf("requests %q; want %q", lines, tt.wantReqs)
			}
			if len(tt.wantBody) > 0 && len(reqs) > 0 {
				last := reqs[len(reqs)-1]
				for _, w := range tt.wantBody {
					if !strings.Contains(last.Body, w) {
						t.Errorf("body %q lacks %q", last.Body, w)
					}
				}
			}
			if tt.name == "import" && (len(reqs) != 1 || !strings.HasPrefix(reqs[0].ContentType, "text/plain")) {
				t.Errorf("import sent %+v; want the file as text/plain", reqs)
			}
		})
	}
}

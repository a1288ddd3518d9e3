package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

// goodFP is the fingerprint fakeHostKeys accepts; any other well-formed one
// is a mismatch.
const goodFP = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"

// fakeHostKeys stands in for the SSH pool's Trust: it records each call;
// the host down.example is unreachable, and a fingerprint other than
// goodFP is a mismatch.
type fakeHostKeys struct {
	mu    sync.Mutex
	calls []trustCall // guarded by mu
}

type trustCall struct {
	Target      model.Target
	SSH         model.SSHTarget
	Fingerprint string
}

func (f *fakeHostKeys) Trust(ctx context.Context, t model.Target, fp string) error {
	f.mu.Lock()
	call := trustCall{Target: t, Fingerprint: fp}
	if t.SSH != nil {
		call.SSH = *t.SSH
	}
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	switch {
	case t.SSH == nil:
		return errors.New("no ssh settings")
	case t.SSH.Host == "down.example":
		return fmt.Errorf("dial %s: connection refused: %w", t.Addr, exec.ErrUnreachable)
	case fp != goodFP:
		return fmt.Errorf("host %s presents SHA256:other, not %s: %w", t.Addr, fp, api.ErrHostKey)
	}
	return nil
}

func (f *fakeHostKeys) Calls() []trustCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func TestHostsCRUD(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, map[string]string{"role": "web"})

	var got wire.Host
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{Host: "10.0.0.7", User: "deploy", Port: 2222,
		Key: "/etc/felix/keys/id_ed25519", Become: true, Labels: map[string]string{"role": "db"}, RemoteTmp: "~/.ansible/tmp", ProxyJump: "ops@bastion:2222,[fd00::1]"}, &got, http.StatusCreated)
	if got.RemoteTmp != "~/.ansible/tmp" {
		t.Errorf("POST /hosts remote_tmp = %q; want ~/.ansible/tmp", got.RemoteTmp)
	}
	if got.ID != "10.0.0.7" || got.Host != "10.0.0.7" || got.Port != 2222 || got.User != "deploy" || got.ProxyJump != "ops@bastion:2222,[fd00::1]" ||
		got.Key != "/etc/felix/keys/id_ed25519" || !got.Become || got.Labels["role"] != "db" || got.Minion != "" || got.CreatedAt.IsZero() {
		t.Errorf("POST /hosts = %+v; want the host with its id defaulting to its address", got)
	}
	// The id of a minion: the same machine, which the host view says.
	got = wire.Host{}
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "web1", Host: "web1.example"}, &got, http.StatusCreated)
	if got.ID != "web1" || got.Port != 22 || got.Minion != "accepted" || got.Become {
		t.Errorf("POST /hosts web1 = %+v; want port 22 and minion accepted", got)
	}

	status, body := h.do(h.client(nil), "POST", "/api/v1/hosts", "Bearer "+h.admin, wire.HostRequest{Host: "10.0.0.7"})
	if status != http.StatusConflict {
		t.Errorf("POST a known id = %d %s; want 409", status, body)
	}
	wantError(t, "duplicate host", body, "10.0.0.7", "replace")
	got = wire.Host{}
	h.adminDo("POST", "/api/v1/hosts?replace=true", wire.HostRequest{Host: "10.0.0.7", User: "root"}, &got, http.StatusOK)
	if got.User != "root" || got.Port != 22 || got.Key != "" || got.Labels != nil {
		t.Errorf("replaced host = %+v; want only the new settings", got)
	}

	var list wire.HostList
	h.adminDo("GET", "/api/v1/hosts", nil, &list, http.StatusOK)
	if len(list.Hosts) != 2 || list.Hosts[0].ID != "10.0.0.7" || list.Hosts[1].ID != "web1" || list.Hosts[1].Minion != "accepted" {
		t.Errorf("GET /hosts = %+v; want 10.0.0.7 and web1 (minion accepted)", list.Hosts)
	}
	h.adminDo("GET", "/api/v1/hosts/web1", nil, &got, http.StatusOK)
	if got.Host != "web1.example" {
		t.Errorf("GET /hosts/web1 = %+v", got)
	}

	h.adminDo("PUT", "/api/v1/hosts/web1/labels", wire.Labels{Set: map[string]string{"zone": "eu", "tier": "1"}}, &got, http.StatusOK)
	got = wire.Host{}
	h.adminDo("PUT", "/api/v1/hosts/web1/labels", wire.Labels{Remove: []string{"tier"}}, &got, http.StatusOK)
	if !maps.Equal(got.Labels, map[string]string{"zone": "eu"}) {
		t.Errorf("host labels %v; want zone=eu", got.Labels)
	}
	if m, _ := h.store.Minion(context.Background(), "web1"); !maps.Equal(m.Labels, map[string]string{"role": "web"}) {
		t.Errorf("minion web1 labels %v; want its own, untouched", m.Labels)
	}

	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/hosts/nope", ""},
		{"DELETE", "/api/v1/hosts/nope", ""},
		{"PUT", "/api/v1/hosts/nope/labels", `{"set": {"a": "b"}}`},
	} {
		var b any
		if r.body != "" {
			b = r.body
		}
		status, body := h.do(h.client(nil), r.method, r.path, "Bearer "+h.admin, b)
		if status != http.StatusNotFound {
			t.Errorf("%s %s = %d %s; want 404", r.method, r.path, status, body)
		}
		wantError(t, r.path, body, "nope")
	}

	h.adminDo("DELETE", "/api/v1/hosts/web1", nil, nil, http.StatusOK)
	if _, err := h.store.Minion(context.Background(), "web1"); err != nil {
		t.Errorf("deleting host web1 deleted its minion: %v", err)
	}
	h.adminDo("GET", "/api/v1/hosts", nil, &list, http.StatusOK)
	if len(list.Hosts) != 1 {
		t.Errorf("hosts after delete: %+v; want one", list.Hosts)
	}
	if n := len(h.keys.Calls()) + len(h.fake.Calls()); n != 0 {
		t.Errorf("%d connections; want none (adding a host connects to nothing)", n)
	}
}

// TestHostsBadInput: every field is data, checked before anything is
// stored or connected to; each bad value is a 400 naming its field.
func TestHostsBadInput(t *testing.T) {
	h := newHarness(t)
	type req = map[string]any
	host := func(kv ...any) req {
		r := req{"host": "10.0.0.7"}
		for i := 0; i < len(kv); i += 2 {
			r[kv[i].(string)] = kv[i+1]
		}
		return r
	}
	tests := []struct {
		name string
		req  any
		want []string
	}{
		{"no host", req{}, []string{"host is empty"}},
		{"host with ;", host("host", "10.0.0.7;reboot"), []string{"host", ";"}},
		{"host with $(", host("host", "$(reboot)"), []string{"host", "$"}},
		{"host with backticks", host("host", "`reboot`"), []string{"host", "`"}},
		{"host with a space", host("host", "10.0.0.7 -oProxyCommand=x"), []string{"host", "' '"}},
		{"host with |", host("host", "a|b"), []string{"host", "|"}},
		{"host with &", host("host", "a&b"), []string{"host", "&"}},
		{"host with a newline", host("host", "a\nb"), []string{"host"}},
		{"host starting with -", host("host", "-oProxyCommand=reboot"), []string{"host", "'-'"}},
		{"host label starting with -", host("host", "a.-b"), []string{"host", "'-'"}},
		{"host too long", host("host", strings.Repeat("a", 254)), []string{"host", "253"}},
		{"host not an IP", host("host", "10.0.0.256"), []string{"host", "IP address"}},
		{"host with a slash", host("host", "10.0.0.0/24"), []string{"host", "/"}},
		{"host with user", host("host", "root@10.0.0.7"), []string{"host", "@"}},
		{"ipv6 host without an id", host("host", "fd00::7"), []string{"id", "fd00::7"}},
		{"user with ;", host("user", "root;reboot"), []string{"user", ";"}},
		{"user with $(", host("user", "$(id)"), []string{"user", "$"}},
		{"user with backticks", host("user", "`id`"), []string{"user", "`"}},
		{"user with a space", host("user", "root x"), []string{"user", "' '"}},
		{"user with |", host("user", "a|b"), []string{"user", "|"}},
		{"user with &", host("user", "a&b"), []string{"user", "&"}},
		{"user starting with -", host("user", "-oProxyCommand=x"), []string{"user", "'-'"}},
		{"user in capitals", host("user", "Root"), []string{"user", "Root"}},
		{"user too long", host("user", strings.Repeat("a", 33)), []string{"user", "32"}},
		{"become_user with ;", host("become_user", "pg;reboot"), []string{"become_user", ";"}},
		{"become_user starting with -", host("become_user", "-s"), []string{"become_user", "'-'"}},
		{"port 0 means default, -1 is bad", host("port", -1), []string{"port", "-1", "1-65535"}},
		{"port too large", host("port", 65536), []string{"port", "65536"}},
		{"port as a string", host("port", "22; reboot"), []string{"port"}},
		{"key with ;", host("key", "/k;reboot"), []string{"key", ";"}},
		{"key with $(", host("key", "/k$(reboot)"), []string{"key", "$"}},
		{"key with backticks", host("key", "/k`reboot`"), []string{"key", "`"}},
		{"key with a space", host("key", "/my key"), []string{"key", "' '"}},
		{"key with |", host("key", "/k|x"), []string{"key", "|"}},
		{"key with &", host("key", "/k&x"), []string{"key", "&"}},
		{"key starting with -", host("key", "-oProxyCommand=x"), []string{"key", "'-'"}},
		{"key with ~", host("key", "~/.ssh/id_rsa"), []string{"key", "~"}},
		{"key relative", host("key", "keys/id_rsa"), []string{"key", "absolute"}},
		{"key with NUL", host("key", "/k\x00x"), []string{"key"}},
		{"key with a newline", host("key", "/k\nx"), []string{"key"}},
		{"remote_tmp with ..", host("remote_tmp", "../x"), []string{"remote_tmp", "absolute"}},
		{"remote_tmp relative", host("remote_tmp", "rel/dir"), []string{"remote_tmp", "absolute"}},
		{"remote_tmp with a .. element", host("remote_tmp", "/tmp/../etc"), []string{"remote_tmp", ".."}},
		{"remote_tmp with $(", host("remote_tmp", "/tmp/$(reboot)"), []string{"remote_tmp", "$"}},
		{"remote_tmp with a space", host("remote_tmp", "/tmp/a b"), []string{"remote_tmp", "' '"}},
		{"remote_tmp with a newline", host("remote_tmp", "/tmp\nx"), []string{"remote_tmp"}},
		{"remote_tmp ~user", host("remote_tmp", "~root/tmp"), []string{"remote_tmp", "~/"}},
		{"remote_tmp too long", host("remote_tmp", "/"+strings.Repeat("a", 200)), []string{"remote_tmp", "200"}},
		{"proxy_jump with ;", host("proxy_jump", "bastion;reboot"), []string{"proxy jump", ";"}},
		{"proxy_jump with an option", host("proxy_jump", "-oProxyCommand=x"), []string{"proxy jump", "'='"}},
		{"proxy_jump starting with -", host("proxy_jump", "-J"), []string{"proxy jump", "'-'"}},
		{"proxy_jump with a space", host("proxy_jump", "b1 b2"), []string{"proxy jump", "' '"}},
		{"proxy_jump with a token", host("proxy_jump", "%h"), []string{"proxy jump", "%"}},
		{"proxy_jump with an empty hop", host("proxy_jump", "b1,,b2"), []string{"proxy jump", "empty hop"}},
		{"bad id", host("id", "a b"), []string{"id", "a b"}},
		{"id with ..", host("id", "a..b"), []string{"id"}},
		{"id starting with -", host("id", "-x"), []string{"id", "-x"}},
		{"bad label key", host("labels", map[string]string{"a b": "c"}), []string{"label key"}},
		{"bad label value", host("labels", map[string]string{"a": "b\x1b[31m"}), []string{"label a"}},
		{"become not a bool", host("become", "yes"), []string{"become"}},
		{"unknown field", host("password", "hunter2"), []string{"password"}},
		{"not JSON", "host: 10.0.0.7", []string{"malformed JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			status, out := h.do(h.client(nil), "POST", "/api/v1/hosts", "Bearer "+h.admin, tt.req)
			if status != http.StatusBadRequest {
				t.Errorf("POST /hosts %v = %d %s; want 400", tt.req, status, out)
			}
			wantError(t, "POST /hosts", out, tt.want...)
			h.wantUnchanged("POST /hosts", before)
		})
	}
	status, out := h.do(h.client(nil), "POST", "/api/v1/hosts?replace=maybe", "Bearer "+h.admin, host())
	if status != http.StatusBadRequest {
		t.Errorf("replace=maybe = %d %s; want 400", status, out)
	}
	if n := h.count("hosts"); n != 0 {
		t.Errorf("%d hosts stored; want 0", n)
	}
	if n := len(h.keys.Calls()) + len(h.fake.Calls()); n != 0 {
		t.Errorf("%d connections; want none", n)
	}
}

func TestHostTrust(t *testing.T) {
	h := newHarness(t)
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "db1", Host: "10.0.1.1", Port: 2222, User: "admin"}, nil, http.StatusCreated)
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "down", Host: "down.example"}, nil, http.StatusCreated)
	trust := func(id string, body any) (int, []byte) {
		t.Helper()
		return h.do(h.client(nil), "POST", "/api/v1/hosts/"+url.PathEscape(id)+"/trust", "Bearer "+h.admin, body)
	}

	// By inventory id: the host's address and port.
	var ok wire.Trusted
	status, body := trust("db1", wire.TrustRequest{Fingerprint: goodFP})
	if status != http.StatusOK || json.Unmarshal(body, &ok) != nil || ok.Host != "10.0.1.1" || ok.Port != 2222 || ok.Fingerprint != goodFP {
		t.Errorf("trust db1 = %d %s; want 200 with 10.0.1.1:2222", status, body)
	}
	// An address that is not in the inventory (a host to bootstrap), with a
	// port; and a fingerprint written the lower-case way with padding.
	status, body = trust("10.0.9.9", wire.TrustRequest{Fingerprint: "sha256:" + strings.TrimPrefix(goodFP, "SHA256:") + "=", Port: 2200})
	if status != http.StatusOK {
		t.Errorf("trust 10.0.9.9 = %d %s; want 200", status, body)
	}
	calls := h.keys.Calls()
	if len(calls) != 2 || !reflect.DeepEqual(calls[0].SSH, model.SSHTarget{Host: "10.0.1.1", Port: 2222, User: "admin"}) ||
		calls[0].Target.ID != "db1" || !reflect.DeepEqual(calls[1].SSH, model.SSHTarget{Host: "10.0.9.9", Port: 2200}) || calls[1].Fingerprint != goodFP {
		t.Errorf("Trust calls = %+v; want db1 at 10.0.1.1:2222 as admin, then 10.0.9.9:2200 with the normalised fingerprint", calls)
	}

	// The host's key differs: 400, and the error says so.
	status, body = trust("db1", wire.TrustRequest{Fingerprint: "SHA256:" + strings.Repeat("A", 43)})
	if status != http.StatusBadRequest {
		t.Errorf("trust with another fingerprint = %d %s; want 400", status, body)
	}
	wantError(t, "mismatch", body, "10.0.1.1:2222", "SHA256:other")
	// The host cannot be reached: 502.
	status, body = trust("down", wire.TrustRequest{Fingerprint: goodFP})
	if status != http.StatusBadGateway {
		t.Errorf("trust of an unreachable host = %d %s; want 502", status, body)
	}
	wantError(t, "unreachable", body, "connection refused")

	// Bad input is refused before any connection.
	n := len(h.keys.Calls())
	bad := []struct {
		name, id string
		body     any
		want     []string
	}{
		{"no fingerprint", "db1", wire.TrustRequest{}, []string{"fingerprint"}},
		{"md5 fingerprint", "db1", wire.TrustRequest{Fingerprint: "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"}, []string{"fingerprint", "SHA256"}},
		{"short fingerprint", "db1", wire.TrustRequest{Fingerprint: "SHA256:abc"}, []string{"fingerprint", "43"}},
		{"fingerprint with ;", "db1", wire.TrustRequest{Fingerprint: "SHA256:" + strings.Repeat("A", 42) + ";"}, []string{"fingerprint", "base64"}},
		{"bad port", "db1", wire.TrustRequest{Fingerprint: goodFP, Port: 70000}, []string{"port", "70000"}},
		{"address with ;", "10.0.0.1;reboot", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", ";"}},
		{"address with $(", "$(reboot)", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "$"}},
		{"address with backticks", "`reboot`", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "`"}},
		{"address with a space", "a b", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "' '"}},
		{"address with |", "a|b", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "|"}},
		{"address with &", "a&b", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "&"}},
		{"address starting with -", "-oProxyCommand=reboot", wire.TrustRequest{Fingerprint: goodFP}, []string{"host", "'-'"}},
		{"unknown field", "db1", map[string]any{"fingerprint": goodFP, "user": "root"}, []string{"user"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			status, body := trust(tt.id, tt.body)
			if status != http.StatusBadRequest {
				t.Errorf("trust %q %+v = %d %s; want 400", tt.id, tt.body, status, body)
			}
			wantError(t, tt.name, body, tt.want...)
		})
	}
	if got := len(h.keys.Calls()); got != n {
		t.Errorf("bad trust requests reached the SSH pool %d times; want 0", got-n)
	}
}

func TestImportHosts(t *testing.T) {
	h := newHarness(t)
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "db1", Host: "10.0.1.9", Labels: map[string]string{"keep": "me"}}, nil, http.StatusCreated)
	inv := `# plain lines
10.0.0.7
deploy@10.0.0.8:2222
web9.example   # a comment

[db]
db1 ansible_host=10.0.1.1 ansible_user=admin ansible_ssh_private_key_file=/etc/felix/keys/db
db2 ansible_host=10.0.1.2 ansible_port=2200 ansible_become=yes ansible_python_interpreter=/usr/bin/python3 ansible_remote_tmp=/var/tmp/felix

[web]
web[01:03].example

[web:vars]
ansible_user=www
`
	var res wire.ImportResult
	h.adminDo("POST", "/api/v1/hosts/import", inv, &res, http.StatusOK)
	if res.Added != 7 || res.Updated != 1 || res.Errors == nil || len(res.Errors) != 0 {
		t.Errorf("import = %+v; want 7 added, 1 updated (db1), no errors", res)
	}
	var list wire.HostList
	h.adminDo("GET", "/api/v1/hosts", nil, &list, http.StatusOK)
	got := map[string]string{}
	for _, x := range list.Hosts {
		got[x.ID] = fmt.Sprintf("%s:%d user=%s key=%s become=%v labels=%v", x.Host, x.Port, x.User, x.Key, x.Become, x.Labels)
	}
	want := map[string]string{
		"10.0.0.7":      "10.0.0.7:22 user= key= become=false labels=map[]",
		"10.0.0.8":      "10.0.0.8:2222 user=deploy key= become=false labels=map[]",
		"web9.example":  "web9.example:22 user= key= become=false labels=map[]",
		"db1":           "10.0.1.1:22 user=admin key=/etc/felix/keys/db become=false labels=map[group:db keep:me]",
		"db2":           "10.0.1.2:2200 user= key= become=true labels=map[group:db]",
		"web01.example": "web01.example:22 user=www key= become=false labels=map[group:web]",
		"web02.example": "web02.example:22 user=www key= become=false labels=map[group:web]",
		"web03.example": "web03.example:22 user=www key= become=false labels=map[group:web]",
	}
	if !maps.Equal(got, want) {
		t.Errorf("imported hosts:\n%v\nwant\n%v", got, want)
	}
	for _, x := range list.Hosts {
		if wantTmp := map[string]string{"db2": "/var/tmp/felix"}[x.ID]; x.RemoteTmp != wantTmp {
			t.Errorf("imported host %s remote_tmp %q; want %q (ansible_remote_tmp)", x.ID, x.RemoteTmp, wantTmp)
		}
	}

	// The same inventory again updates every host.
	res = wire.ImportResult{}
	h.adminDo("POST", "/api/v1/hosts/import", inv, &res, http.StatusOK)
	if res.Added != 0 || res.Updated != 8 {
		t.Errorf("second import = %+v; want 0 added, 8 updated", res)
	}
}

// TestImportHostsAllOrNothing: any bad line is a 400 naming every bad line,
// and nothing is stored. What makes a line bad is hostlist's (its tests).
func TestImportHostsAllOrNothing(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name  string
		inv   string
		lines []int
		want  []string
	}{
		{"shell metacharacters", "10.0.0.1\n10.0.0.2;reboot\nroot@$(reboot)\n`id`@h\na|b\na&b\n", []int{2, 3, 4, 5, 6}, []string{"line 2", ";"}},
		{"conflicting duplicate", "[a]\nh1 ansible_user=x\n[b]\nh1 ansible_user=y\n", []int{4}, []string{"line 4", "line 2"}},
		{"control characters", "h1\x1b[2J\n", []int{1}, []string{"line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			status, out := h.do(h.client(nil), "POST", "/api/v1/hosts/import", "Bearer "+h.admin, tt.inv)
			if status != http.StatusBadRequest {
				t.Fatalf("import = %d %s; want 400", status, out)
			}
			var res wire.ImportResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("import answer %s: %v", out, err)
			}
			var lines []int
			for _, e := range res.Errors {
				lines = append(lines, e.Line)
				if e.Error == "" {
					t.Errorf("line %d: empty error", e.Line)
				}
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("bad lines %v (%+v); want %v", lines, res.Errors, tt.lines)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Error, w) {
					t.Errorf("error %q; want it to contain %q", res.Error, w)
				}
			}
			if !strings.Contains(res.Error, "nothing imported") || res.Added != 0 || res.Updated != 0 {
				t.Errorf("answer %+v; want nothing imported", res)
			}
			h.wantUnchanged("a bad import", before)
		})
	}
	// A body that is no inventory at all is a 400 of the same shape.
	wantImportError := func(what string, status int, out []byte, lines []int, want string) {
		t.Helper()
		var res map[string]any
		if status != http.StatusBadRequest || json.Unmarshal(out, &res) != nil {
			t.Errorf("import %s = %d %s; want 400 with an ImportResult", what, status, out)
			return
		}
		var got []int
		for _, e := range res["errors"].([]any) {
			got = append(got, int(e.(map[string]any)["line"].(float64)))
		}
		msg, _ := res["error"].(string)
		if !slices.Equal(got, lines) || !strings.Contains(msg, want) || !strings.Contains(msg, "nothing imported") ||
			res["added"] != 0.0 || res["updated"] != 0.0 {
			t.Errorf("import %s = %s; want bad lines %v and an error about %q", what, out, lines, want)
		}
	}
	for _, empty := range []string{"", "# only comments\n\n; and these\n", "[web]\n"} {
		status, out := h.do(h.client(nil), "POST", "/api/v1/hosts/import", "Bearer "+h.admin, empty)
		wantImportError(fmt.Sprintf("%q", empty), status, out, nil, "names no host")
	}
	status, out := h.do(h.client(nil), "POST", "/api/v1/hosts/import", "Bearer "+h.admin, []byte("h1\n\xff\xfe\nh2\n"))
	wantImportError("of non-UTF-8", status, out, []int{2}, "not UTF-8")
	if n := h.count("hosts"); n != 0 {
		t.Errorf("%d hosts stored; want 0", n)
	}
}

// TestDryRunTransport: a dry run says which transport each host would use.
func TestDryRunTransport(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	h.addMinion("web2", "127.0.0.8:4510", true, nil)
	h.addMinion("p1", "127.0.0.7:4510", false, nil)
	for _, r := range []wire.HostRequest{{ID: "web1", Host: "127.0.0.9"}, {ID: "ssh1", Host: "10.0.5.1", Port: 2222}, {ID: "p1", Host: "127.0.0.7"}} {
		h.adminDo("POST", "/api/v1/hosts", r, nil, http.StatusCreated)
	}
	targets := []string{"web1", "web2", "ssh1", "p1"}
	tests := []struct {
		mode string
		want []string // host state transport fallback, sorted by host
	}{
		{"", []string{"p1 would run ssh ", "ssh1 would run ssh ", "web1 would run agent ssh", "web2 would run agent "}},
		{"agent", []string{"p1 unreachable  ", "ssh1 unreachable  ", "web1 would run agent ", "web2 would run agent "}},
		{"ssh", []string{"p1 would run ssh ", "ssh1 would run ssh ", "web1 would run ssh ", "web2 unreachable  "}},
	}
	for _, tt := range tests {
		var dr wire.DryRun
		h.adminDo("POST", "/api/v1/exec?dry_run=true", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: targets, Transport: tt.mode}, CmdLine: "true"}, &dr, http.StatusOK)
		var got []string
		for _, x := range dr.Hosts {
			got = append(got, fmt.Sprintf("%s %s %s %s", x.Host, x.State, x.Transport, x.Fallback))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("dry run with transport %q:\n%q\nwant\n%q", tt.mode, got, tt.want)
		}
	}
	if got := h.fake.Calls(); len(got) != 0 {
		t.Errorf("transport called %d times by dry runs; want 0", len(got))
	}
}

// TestExecTransportStored: the request's transport reaches each target and
// is kept with the job.
func TestExecTransportStored(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "web1", Host: "127.0.0.9", User: "deploy"}, nil, http.StatusCreated)
	id := h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}, Transport: "ssh"}, CmdLine: "true"})
	h.waitJob(id)
	calls := h.fake.Calls()
	if len(calls) != 1 || calls[0].Target.Mode != "ssh" || calls[0].Target.SSH == nil || calls[0].Target.SSH.User != "deploy" {
		t.Fatalf("calls = %+v; want web1 in mode ssh with its ssh settings", calls)
	}
	var spec string
	if err := h.db.QueryRow(`SELECT spec FROM jobs WHERE id = ?`, id).Scan(&spec); err != nil || !strings.Contains(spec, `"transport":"ssh"`) {
		t.Errorf("stored spec %s (%v); want transport ssh kept for reruns", spec, err)
	}
	id = h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdLine: "true"})
	h.waitJob(id)
	if calls := h.fake.Calls(); len(calls) != 2 || calls[1].Target.Mode != "auto" {
		t.Errorf("default mode = %q; want auto", calls[len(calls)-1].Target.Mode)
	}
}

// TestBecomeUser: a host's become_user is stored, shown and reaches the
// transport (implying become); a run's become_user replaces it for that
// run only.
func TestBecomeUser(t *testing.T) {
	h := newHarness(t)
	var got wire.Host
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "db1", Host: "127.0.0.9", User: "deploy", BecomeUser: "postgres"}, &got, http.StatusCreated)
	if !got.Become || got.BecomeUser != "postgres" {
		t.Errorf("POST /hosts = %+v; want become as postgres", got)
	}
	got = wire.Host{}
	h.adminDo("GET", "/api/v1/hosts/db1", nil, &got, http.StatusOK)
	if !got.Become || got.BecomeUser != "postgres" {
		t.Errorf("GET /hosts/db1 = %+v; want become as postgres", got)
	}
	tests := []struct {
		opts wire.JobOptions
		want string // user/become/become_user the transport gets
	}{
		{wire.JobOptions{}, "deploy/true/postgres"},
		{wire.JobOptions{BecomeUser: "app"}, "deploy/true/app"},
		{wire.JobOptions{SSHUser: "ops", Become: true}, "ops/true/postgres"},
	}
	for i, tt := range tests {
		tt.opts.Targets, tt.opts.Transport = []string{"db1"}, "ssh"
		h.waitJob(h.submit(wire.ExecRequest{JobOptions: tt.opts, CmdLine: "true"}))
		calls := h.fake.Calls()
		if len(calls) != i+1 || calls[i].Target.SSH == nil {
			t.Fatalf("calls = %+v; want %d", calls, i+1)
		}
		st := calls[i].Target.SSH
		if g := fmt.Sprintf("%s/%v/%s", st.User, st.Become, st.BecomeUser); g != tt.want {
			t.Errorf("run %+v reached the transport as %s; want %s", tt.opts, g, tt.want)
		}
	}
}

// TestImportHostsFormats: Ansible YAML inventories and salt-ssh rosters,
// detected or named by ?format; every group of a host, ancestors included,
// is shown and targetable.
func TestImportHostsFormats(t *testing.T) {
	h := newHarness(t)
	yamlInv := "all:\n  children:\n    prod:\n      children:\n        web:\n          hosts:\n            w1: {ansible_host: 10.0.0.1, ansible_user: www}\n" +
		"        db:\n          hosts:\n            d1:\n      vars: {ansible_port: 2200}\n"
	roster := "r1:\n  host: 10.0.0.9\n  user: salt\n  sudo: true\n"
	tests := []struct {
		name, query, body string
		want              map[string]string // id: "addr:port user groups labels"
	}{
		{"yaml detected", "", yamlInv, map[string]string{"w1": "10.0.0.1:2200 www [web prod] map[group:web]", "d1": "d1:2200  [db prod] map[group:db]"}},
		{"roster named", "?format=roster", roster, map[string]string{"r1": "10.0.0.9:22 salt [] map[]"}},
		{"ini named", "?format=ini", "[a]\nh1\n[b:children]\na\n", map[string]string{"h1": "h1:22  [a b] map[group:a]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res wire.ImportResult
			h.adminDo("POST", "/api/v1/hosts/import"+tt.query, tt.body, &res, http.StatusOK)
			if res.Added+res.Updated != len(tt.want) {
				t.Errorf("import = %+v; want %d hosts", res, len(tt.want))
			}
			for id, want := range tt.want {
				var x wire.Host
				h.adminDo("GET", "/api/v1/hosts/"+id, nil, &x, http.StatusOK)
				got := fmt.Sprintf("%s:%d %s %v %v", x.Host, x.Port, x.User, x.Groups, x.Labels)
				if x.Groups == nil {
					got = fmt.Sprintf("%s:%d %s [] %v", x.Host, x.Port, x.User, x.Labels)
				}
				if got != want {
					t.Errorf("host %s = %q; want %q", id, got, want)
				}
			}
		})
	}
	var dry wire.DryRun
	h.adminDo("POST", "/api/v1/exec", map[string]any{"cmd_line": "true", "targets": []string{"group=prod"}, "dry_run": true}, &dry, http.StatusOK)
	var ids []string
	for _, x := range dry.Hosts {
		ids = append(ids, x.Host)
	}
	if !slices.Equal(ids, []string{"d1", "w1"}) {
		t.Errorf("dry run of group=prod = %q; want d1 and w1 (in web and db under prod)", ids)
	}

	// Bad YAML, a cycle, a password, an unknown format: 400, nothing stored.
	before := h.dump()
	for _, bad := range []struct{ query, body, want string }{
		{"?format=yaml", "all:\n  children:\n    a:\n      children:\n        a:\n", "line 5: group cycle"},
		{"", "r1:\n  host: 10.0.0.1\n  passwd: x\n", "line 3: r1: passwd"},
		{"?format=toml", "h1\n", "format \"toml\""},
		{"?format=yaml", "all: [\n", "line 1"},
	} {
		status, out := h.do(h.client(nil), "POST", "/api/v1/hosts/import"+bad.query, "Bearer "+h.admin, bad.body)
		var res wire.ImportResult
		if status != http.StatusBadRequest || json.Unmarshal(out, &res) != nil || !strings.Contains(res.Error, bad.want) ||
			!strings.Contains(res.Error, "nothing imported") {
			t.Errorf("import%s %q = %d %s; want 400 saying %q", bad.query, bad.body, status, out, bad.want)
		}
	}
	h.wantUnchanged("bad imports", before)
}

// TestRefreshHostFacts: POST /api/v1/hosts/facts answers every selected
// host, with its facts or why it has none; bad requests are refused.
// (Gathering over real SSH is e2e's TestAgentlessFacts.)
func TestRefreshHostFacts(t *testing.T) {
	h := newHarness(t)
	h.adminDo("POST", "/api/v1/hosts/import", "[web]\nw1 ansible_host=10.0.0.1\n", nil, http.StatusOK)
	var res wire.HostFactsList
	h.adminDo("POST", "/api/v1/hosts/facts", wire.HostFactsRequest{Targets: []string{"w1", "nope"}}, &res, http.StatusOK)
	got := map[string]string{}
	for _, x := range res.Hosts {
		got[x.ID] = x.Error
	}
	if len(got) != 2 || !strings.Contains(got["w1"], "without the ssh transport") || !strings.Contains(got["nope"], "no minion or host") {
		t.Errorf("refresh = %+v; want w1 failing (no ssh transport) and nope unknown", res)
	}
	var x wire.Host
	h.adminDo("GET", "/api/v1/hosts/w1", nil, &x, http.StatusOK)
	if !strings.Contains(x.FactsError, "without the ssh transport") || x.Facts != nil || x.FactsGatheredAt != nil {
		t.Errorf("host w1 = %+v; want its facts error and no facts", x)
	}
	// With facts to gather, they are answered and shown with the host.
	h.server.Jobs.(*jobs.Service).HostFacts = debianFacts{}
	res = wire.HostFactsList{}
	h.adminDo("POST", "/api/v1/hosts/facts", wire.HostFactsRequest{Targets: []string{"group=web"}}, &res, http.StatusOK)
	if len(res.Hosts) != 1 || res.Hosts[0].Error != "" || !strings.Contains(string(res.Hosts[0].Facts), `"os_name":"debian"`) ||
		res.Hosts[0].GatheredAt == nil {
		t.Errorf("refresh group=web = %+v; want w1's facts", res)
	}
	x = wire.Host{}
	h.adminDo("GET", "/api/v1/hosts/w1", nil, &x, http.StatusOK)
	if x.FactsError != "" || !strings.Contains(string(x.Facts), `"os_name":"debian"`) || x.FactsGatheredAt == nil {
		t.Errorf("host w1 = %+v; want its facts", x)
	}
	for _, tt := range []struct {
		body   any
		status int
	}{
		{wire.HostFactsRequest{}, http.StatusBadRequest},
		{wire.HostFactsRequest{Targets: []string{"bad\x00"}}, http.StatusBadRequest},
		{map[string]any{"targets": []string{"w1"}, "extra": 1}, http.StatusBadRequest},
		{wire.HostFactsRequest{Targets: []string{"zz*"}}, http.StatusNotFound},
		{wire.HostFactsRequest{Targets: []string{strings.Repeat("x", 5<<20)}}, http.StatusRequestEntityTooLarge},
	} {
		status, out := h.do(h.client(nil), "POST", "/api/v1/hosts/facts", "Bearer "+h.admin, tt.body)
		if status != tt.status {
			t.Errorf("refresh %.80v = %d %.200s; want %d", tt.body, status, out, tt.status)
		}
	}
}

// debianFacts answers every host's facts as Debian 12's.
type debianFacts struct{}

func (debianFacts) Facts(ctx context.Context, t model.Target) (facts.Facts, error) {
	return facts.Facts{Hostname: t.ID, OSName: "debian", OSVersion: "12", Arch: "x86_64", CPUs: 2}, nil
}

package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/model"
)

// fakeBootstrapper records what it is asked and answers ok for each host.
type fakeBootstrapper struct {
	mu      sync.Mutex
	targets []model.Target // protected by mu
	ids     []string       // protected by mu
}

func (f *fakeBootstrapper) Many(ctx context.Context, targets []model.Target, ids []string) []bootstrap.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, targets...)
	f.ids = append(f.ids, ids...)
	out := make([]bootstrap.Result, len(targets))
	for i, t := range targets {
		out[i] = bootstrap.Result{Host: t.ID, ID: "m" + t.SSH.Host, State: bootstrap.StateOK, Action: bootstrap.ActionInstalled,
			Arch: "amd64", Init: bootstrap.InitSupervise, Fingerprint: "sha256:ab"}
		if t.SSH.Host == "10.0.0.66" {
			out[i] = bootstrap.Result{Host: t.ID, State: bootstrap.StateFailed, Arch: "riscv64", Reason: "no minion binary for linux/riscv64"}
		}
	}
	return out
}

func (f *fakeBootstrapper) seen() ([]model.Target, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]model.Target(nil), f.targets...), append([]string(nil), f.ids...)
}

func bootstrapServer(t *testing.T, b api.Bootstrapper) (post func(body string) (int, []byte)) {
	t.Helper()
	s := bareServer(t, b)
	return func(body string) (int, []byte) { return s.post("/api/v1/bootstrap", body) }
}

func TestBootstrap(t *testing.T) {
	fake := &fakeBootstrapper{}
	post := bootstrapServer(t, fake)
	status, body := post(`{"hosts": ["root@10.0.0.5", "admin@10.0.0.66:2222", "web-3.example.net"], "port": 2200, "key": "/etc/felix/id_ed25519"}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp wire.BootstrapResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 3 || resp.Results[0].State != "ok" || resp.Results[0].Host != "root@10.0.0.5" ||
		resp.Results[1].State != "failed" || resp.Results[1].Reason == "" || resp.Results[2].ID != "mweb-3.example.net" {
		t.Errorf("results %+v", resp.Results)
	}
	want := []model.SSHTarget{
		{Host: "10.0.0.5", User: "root", Port: 2200, KeyPath: "/etc/felix/id_ed25519"},
		{Host: "10.0.0.66", User: "admin", Port: 2222, KeyPath: "/etc/felix/id_ed25519"},
		{Host: "web-3.example.net", Port: 2200, KeyPath: "/etc/felix/id_ed25519"},
	}
	targets, _ := fake.seen()
	for i, tg := range targets {
		if !reflect.DeepEqual(*tg.SSH, want[i]) {
			t.Errorf("target %d: %+v; want %+v", i, *tg.SSH, want[i])
		}
	}
	status, body = post(`{"hosts": ["admin@10.0.0.8"], "become": true}`)
	if targets, _ := fake.seen(); status != http.StatusOK || len(targets) != 4 || !targets[3].SSH.Become || targets[0].SSH.Become {
		t.Errorf("with become: status %d %s, targets %+v; want the last one with become, the others without", status, body, targets)
	}
	status, body = post(`{"hosts": ["10.0.0.9"], "proxy_jump": "ops@bastion:2200,10.1.0.1"}`)
	wantJump := []model.SSHHop{{Host: "bastion", Port: 2200, User: "ops"}, {Host: "10.1.0.1"}}
	if targets, _ := fake.seen(); status != http.StatusOK || len(targets) != 5 || !reflect.DeepEqual(targets[4].SSH.Jump, wantJump) ||
		targets[0].SSH.Jump != nil {
		t.Errorf("with proxy_jump: status %d %s, targets %+v; want the last one through %+v", status, body, targets, wantJump)
	}
	status, body = post(`{"hosts": ["10.0.0.7"], "id": "db-1"}`)
	if _, ids := fake.seen(); status != http.StatusOK || len(ids) != 1 || ids[0] != "db-1" {
		t.Errorf("with an id: status %d %s, ids %q", status, body, ids)
	}
}

// TestBootstrapRefusesBadInput: 400 and nothing attempted.
func TestBootstrapRefusesBadInput(t *testing.T) {
	fake := &fakeBootstrapper{}
	post := bootstrapServer(t, fake)
	for _, tc := range []struct{ body, want string }{
		{`{}`, "hosts"},
		{`{"hosts": []}`, "hosts"},
		{`{"hosts": ["-oProxyCommand=touch /tmp/x"]}`, "-"},
		{`{"hosts": ["10.0.0.5;reboot"]}`, "not allowed"},
		{`{"hosts": ["$(reboot)@10.0.0.5"]}`, "user"},
		{`{"hosts": ["-l@10.0.0.5"]}`, "user"},
		{`{"hosts": ["10.0.0.5:99999"]}`, "port"},
		{`{"hosts": ["10.0.0.5"], "port": -1}`, "port"},
		{`{"hosts": ["10.0.0.5"], "key": "-i/etc/shadow"}`, "key"},
		{`{"hosts": ["10.0.0.5"], "key": "/root/k ey"}`, "key"},
		{`{"hosts": ["10.0.0.5"], "key": "/root/k;id"}`, "key"},
		{`{"hosts": ["10.0.0.5", "10.0.0.6"], "id": "web"}`, "single host"},
		{`{"hosts": ["10.0.0.5"], "id": "a b"}`, "id"},
		{`{"hosts": ["10.0.0.5", "root@10.0.0.5:22"]}`, "same host"},
		{`{"hosts": ["10.0.0.5"], "sudo": true}`, "unknown field"},
		{`{"hosts": ["10.0.0.5"], "become": "yes"}`, "become"},
		{`{"hosts": "10.0.0.5"}`, "hosts"},
		{`{"hosts": ["10.0.0.5"], "proxy_jump": "root@b;id"}`, "proxy_jump"},
		{`{"hosts": ["10.0.0.5"], "proxy_jump": "-oProxyCommand=id"}`, "proxy_jump"},
		{`{"hosts": ["10.0.0.5"], "proxy_jump": "a,,b"}`, "proxy_jump"},
	} {
		status, body := post(tc.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d %s; want 400", tc.body, status, body)
			continue
		}
		wantError(t, tc.body, body, tc.want)
	}
	if targets, _ := fake.seen(); len(targets) != 0 {
		t.Errorf("bad requests reached the bootstrapper: %+v", targets)
	}
}

func TestBootstrapUnavailable(t *testing.T) {
	post := bootstrapServer(t, nil)
	if status, body := post(`{"hosts": ["10.0.0.5"]}`); status != http.StatusServiceUnavailable {
		t.Errorf("status %d %s; want 503", status, body)
	}
}

// loginBootstrapper answers like the real one: ok hosts with the login
// given, except db.example (an inventory host: no login) and 10.0.0.66
// (failed).
type loginBootstrapper struct{}

func (loginBootstrapper) Many(ctx context.Context, targets []model.Target, ids []string) []bootstrap.Result {
	out := make([]bootstrap.Result, len(targets))
	for i, t := range targets {
		login := *t.SSH
		out[i] = bootstrap.Result{Host: t.ID, ID: "m" + t.SSH.Host, State: bootstrap.StateOK, Action: bootstrap.ActionInstalled, Login: &login}
		if i < len(ids) && ids[i] != "" {
			out[i].ID = ids[i]
		}
		switch t.SSH.Host {
		case "db.example":
			out[i].Login = nil
		case "10.0.0.66":
			out[i].State, out[i].Action, out[i].Reason = bootstrap.StateFailed, "", "no minion binary for linux/riscv64"
		}
	}
	return out
}

// TestBootstrapRecordsSSHHost: a host bootstrapped with a login given is
// recorded as an SSH host under its minion's id (as felix hosts add
// stores it), unless ssh_fallback is false; a failed host, one already in
// the inventory and one whose id is another host's are left alone.
func TestBootstrapRecordsSSHHost(t *testing.T) {
	// Every case starts with db.example and m10.0.0.9 (at another address)
	// in the inventory.
	pre := []string{`{"id": "db", "host": "db.example", "user": "admin"}`, `{"id": "m10.0.0.9", "host": "other.example"}`}
	for _, tc := range []struct {
		name  string
		body  string
		notes []string             // each result's note
		want  map[string]wire.Host // the inventory afterwards
	}{
		{
			name:  "recorded with the login",
			body:  `{"hosts": ["deploy@10.0.0.5:2222", "10.0.0.6"], "key": "/etc/felix/keys/k"}`,
			notes: []string{"recorded as SSH host m10.0.0.5", "recorded as SSH host m10.0.0.6"},
			want: map[string]wire.Host{
				"m10.0.0.5": {ID: "m10.0.0.5", Host: "10.0.0.5", Port: 2222, User: "deploy", Key: "/etc/felix/keys/k"},
				"m10.0.0.6": {ID: "m10.0.0.6", Host: "10.0.0.6", Port: 22, Key: "/etc/felix/keys/k"},
			},
		},
		{
			name:  "under the id asked for",
			body:  `{"hosts": ["root@10.0.0.5"], "id": "web-1", "ssh_fallback": true}`,
			notes: []string{"recorded as SSH host web-1"},
			want:  map[string]wire.Host{"web-1": {ID: "web-1", Host: "10.0.0.5", Port: 22, User: "root"}},
		},
		{
			name:  "through jump hosts",
			body:  `{"hosts": ["root@10.0.0.5"], "id": "web-2", "proxy_jump": "ops@bastion:2200"}`,
			notes: []string{"recorded as SSH host web-2"},
			want:  map[string]wire.Host{"web-2": {ID: "web-2", Host: "10.0.0.5", Port: 22, User: "root", ProxyJump: "ops@bastion:2200"}},
		},
		{
			name:  "proxy jump none",
			body:  `{"hosts": ["root@10.0.0.5"], "id": "web-3", "proxy_jump": "none"}`,
			notes: []string{"recorded as SSH host web-3"},
			want:  map[string]wire.Host{"web-3": {ID: "web-3", Host: "10.0.0.5", Port: 22, User: "root", ProxyJump: "none"}},
		},
		{
			name:  "ssh_fallback false",
			body:  `{"hosts": ["root@10.0.0.5"], "ssh_fallback": false}`,
			notes: []string{""},
		},
		{
			name:  "failed and inventory hosts",
			body:  `{"hosts": ["root@10.0.0.66", "db.example"]}`,
			notes: []string{"", ""},
		},
		{
			name:  "id of another host",
			body:  `{"hosts": ["root@10.0.0.9"]}`,
			notes: []string{"not recorded as SSH host: m10.0.0.9 is already an agentless host (left as it is)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bareServer(t, loginBootstrapper{})
			for _, h := range pre {
				if status, body := s.post("/api/v1/hosts", h); status != http.StatusCreated {
					t.Fatalf("add %s: %d %s", h, status, body)
				}
			}
			status, body := s.post("/api/v1/bootstrap", tc.body)
			var resp wire.BootstrapResponse
			if err := json.Unmarshal(body, &resp); status != http.StatusOK || err != nil || len(resp.Results) != len(tc.notes) {
				t.Fatalf("status %d %v: %s", status, err, body)
			}
			for i, r := range resp.Results {
				if r.Note != tc.notes[i] {
					t.Errorf("result %d note = %q; want %q", i, r.Note, tc.notes[i])
				}
				if recorded := strings.HasPrefix(r.Note, "recorded"); (r.SSHHost != "") != recorded || (recorded && r.SSHHost != r.ID) {
					t.Errorf("result %d ssh_host = %q with note %q", i, r.SSHHost, r.Note)
				}
			}
			_, body = s.get("/api/v1/hosts")
			var list wire.HostList
			if err := json.Unmarshal(body, &list); err != nil {
				t.Fatal(err)
			}
			got := map[string]wire.Host{}
			for _, h := range list.Hosts {
				got[h.ID] = h
			}
			if db := got["db"]; db.Host != "db.example" || db.User != "admin" || got["m10.0.0.9"].Host != "other.example" || len(got) != 2+len(tc.want) {
				t.Errorf("inventory %+v; want the first hosts unchanged and %d more", got, len(tc.want))
			}
			for id, w := range tc.want {
				h := got[id]
				if h.Host != w.Host || h.Port != w.Port || h.User != w.User || h.Key != w.Key || h.Become != w.Become || h.ProxyJump != w.ProxyJump {
					t.Errorf("host %s = %+v; want %+v", id, h, w)
				}
			}
		})
	}
}

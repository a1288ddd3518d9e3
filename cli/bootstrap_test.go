package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/pki"
)

func TestBootstrap(t *testing.T) {
	var mu sync.Mutex
	var got []wire.BootstrapRequest
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v1/bootstrap" {
			http.Error(w, `{"error":"no"}`, http.StatusNotFound)
			return
		}
		var req wire.BootstrapRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		var resp wire.BootstrapResponse
		for _, h := range req.Hosts {
			res := wire.BootstrapResult{Host: h, ID: "web-" + h[len(h)-1:], State: "ok", Action: "installed", Arch: "amd64", Init: "systemd"}
			if strings.Contains(h, "bad") {
				res = wire.BootstrapResult{Host: h, State: "failed", Arch: "riscv64", Reason: "no minion binary for linux/riscv64"}
			}
			resp.Results = append(resp.Results, res)
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	conn := []string{"--master", srv.URL, "--token", "good", "--master-fingerprint", pki.Fingerprint(srv.Certificate().Raw),
		"--config", filepath.Join(t.TempDir(), "none.toml")}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append(append([]string{"bootstrap"}, conn...), args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	list := filepath.Join(t.TempDir(), "hosts.txt")
	os.WriteFile(list, []byte("# web servers\nroot@10.0.0.2\n\n  10.0.0.3:2222  # the odd one\n"), 0o600)
	code, out, errOut := run("root@10.0.0.1", "-f", list, "--port", "2200", "--key", "/etc/felix/k", "--proxy-jump", "ops@bastion:2200")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"HOST", "ACTION", "INIT", "REASON", "root@10.0.0.1", "web-1", "installed", "systemd", "10.0.0.3:2222"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	mu.Lock()
	req := got[0]
	mu.Unlock()
	if strings.Join(req.Hosts, " ") != "root@10.0.0.1 root@10.0.0.2 10.0.0.3:2222" || req.Port != 2200 || req.Key != "/etc/felix/k" || req.ID != "" ||
		req.ProxyJump != "ops@bastion:2200" {
		t.Errorf("request %+v", req)
	}

	// A failed host: exit 1, its reason shown; JSON on -o json.
	code, out, _ = run("bad-1", "good-2", "-o", "json")
	var resp wire.BootstrapResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || code != 1 || len(resp.Results) != 2 || resp.Results[0].State != "failed" {
		t.Errorf("exit %d, %v, %s; want exit 1 and the failed host", code, err, out)
	}

	// Bad input stays local: nothing is sent.
	for _, args := range [][]string{{}, {"h1", "h2", "--id", "x"}, {"-f", filepath.Join(t.TempDir(), "missing")},
		{"h1", "--proxy-jump", "root@b;id"}, {"h1", "--proxy-jump", "-oProxyCommand=id"}} {
		code, out, errOut := run(args...)
		if code == 0 || !strings.HasPrefix(errOut, "felix bootstrap: ") {
			t.Errorf("felix bootstrap %q: exit %d %s%s; want an error", args, code, out, errOut)
		}
	}
	two := filepath.Join(t.TempDir(), "two.txt")
	os.WriteFile(two, []byte("10.0.0.1 ansible_user=root\n"), 0o600)
	if code, _, errOut := run("-f", two); code == 0 || !strings.Contains(errOut, "line 1") {
		t.Errorf("a line with two words: exit %d %s; want an error naming the line", code, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Errorf("%d requests sent; want 2", len(got))
	}
}

// TestBootstrapSSHFallback: --no-ssh-fallback sends "ssh_fallback": false
// (nothing else sends it), and a host recorded says so in the table.
func TestBootstrapSSHFallback(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, req)
		mu.Unlock()
		res := wire.BootstrapResult{Host: "10.0.0.1", ID: "web-1", State: "ok", Action: "installed"}
		if _, off := req["ssh_fallback"]; !off {
			res.SSHHost, res.Note = "web-1", "recorded as SSH host web-1"
		}
		json.NewEncoder(w).Encode(wire.BootstrapResponse{Results: []wire.BootstrapResult{res}})
	}))
	t.Cleanup(srv.Close)
	conn := []string{"--master", srv.URL, "--token", "good", "--master-fingerprint", pki.Fingerprint(srv.Certificate().Raw),
		"--config", filepath.Join(t.TempDir(), "none.toml")}
	for i, tc := range []struct {
		args       []string
		wantField  any // the request's ssh_fallback; nil: absent
		wantBecome bool
		wantNote   bool
		wantOutput string
	}{
		{args: []string{"root@10.0.0.1"}, wantNote: true, wantOutput: "recorded as SSH host web-1"},
		{args: []string{"root@10.0.0.1", "--no-ssh-fallback"}, wantField: false},
		{args: []string{"root@10.0.0.1", "--no-ssh-fallback", "-o", "json"}, wantField: false},
		{args: []string{"root@10.0.0.1", "-o", "json"}, wantNote: true, wantOutput: `"ssh_host": "web-1"`},
		{args: []string{"admin@10.0.0.1", "--become"}, wantNote: true, wantBecome: true},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append(append([]string{"bootstrap"}, conn...), tc.args...), &out, &errb)
		if code != 0 {
			t.Fatalf("%q: exit %d %s%s", tc.args, code, out.String(), errb.String())
		}
		mu.Lock()
		field, given := bodies[i]["ssh_fallback"]
		become, becomeGiven := bodies[i]["become"]
		mu.Unlock()
		if becomeGiven != tc.wantBecome || (becomeGiven && become != true) {
			t.Errorf("%q: become = %v (given %v); want given %v, true", tc.args, become, becomeGiven, tc.wantBecome)
		}
		if (tc.wantField == nil && given) || (tc.wantField != nil && field != tc.wantField) {
			t.Errorf("%q: ssh_fallback = %v (given %v); want %v", tc.args, field, given, tc.wantField)
		}
		if got := strings.Contains(out.String(), "recorded as SSH host"); got != tc.wantNote {
			t.Errorf("%q: output says recorded = %v; want %v:\n%s", tc.args, got, tc.wantNote, out.String())
		}
		if tc.wantOutput != "" && !strings.Contains(out.String(), tc.wantOutput) {
			t.Errorf("%q: output lacks %q:\n%s", tc.args, tc.wantOutput, out.String())
		}
	}
}

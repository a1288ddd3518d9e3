package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/pki"
)

// fakeMaster answers the API routes the CLI uses with canned bodies and
// records the last exec request.
func fakeMaster(t *testing.T) (*httptest.Server, *wire.ExecRequest) {
	t.Helper()
	var last wire.ExecRequest
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			reply(w, 401, wire.Error{Error: "api token: invalid or expired token"})
			return
		}
		switch {
		case r.URL.Path == "/api/v1/minions":
			reply(w, 200, wire.MinionList{Minions: []wire.Minion{
				{ID: "web01", Address: "10.0.0.1:4510", State: "accepted", Health: "ok", OS: "debian 12", Fingerprint: "sha256:aa"},
				{ID: "web02", Address: "10.0.0.2:4510", State: "pending", Health: "unknown", Fingerprint: "sha256:bb"},
			}})
		case r.URL.Path == "/api/v1/exec":
			json.NewDecoder(r.Body).Decode(&last)
			job := wire.Job{JobID: "j1", Summary: map[string]int{"ok": 1}, Results: []wire.HostResult{
				{Host: "web01", State: "ok", Stdout: "hi\n", Transport: "agent"}}}
			if strings.Contains(last.CmdLine, "fail") {
				job.Summary = map[string]int{"ok": 1, "unreachable": 1}
				job.Results = append(job.Results, wire.HostResult{Host: "web02", State: "unreachable", ExitCode: -1, Error: "connection refused"})
			}
			reply(w, 200, job)
		case strings.HasPrefix(r.URL.Path, "/api/v1/minions/") && strings.HasSuffix(r.URL.Path, "/accept"):
			if strings.Contains(r.URL.Path, "nosuch") {
				reply(w, 404, wire.Error{Error: "minion nosuch: not found"})
				return
			}
			reply(w, 200, map[string]string{"state": "accepted"})
		default:
			reply(w, 404, wire.Error{Error: "no such endpoint"})
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestMain(t *testing.T) {
	srv, last := fakeMaster(t)
	fp := pki.Fingerprint(srv.Certificate().Raw)
	conn := []string{"--master", srv.URL, "--token", "good", "--master-fingerprint", fp,
		"--config", filepath.Join(t.TempDir(), "none.toml")}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErr    string   // substring of stderr
		wantTarget []string
	}{
		{"minions table", []string{"minions"}, 0, []string{"ID", "web01", "10.0.0.1:4510", "debian 12", "LAST SEEN"}, "", nil},
		{"minions json", []string{"minions", "-o", "json"}, 0, []string{`"id": "web01"`}, "", nil},
		{"keys lists pending first", []string{"keys"}, 0, []string{"pending", "sha256:bb"}, "", nil},
		{"keys accept", []string{"keys", "accept", "web02"}, 0, []string{"web02: accepted"}, "", nil},
		{"keys accept unknown", []string{"keys", "accept", "nosuch"}, 1, nil, "not found", nil},
		{"exec ok", []string{"exec", "-t", "web*,db01", "-t", "10.0.0.9", "--", "echo", "hi"}, 0,
			[]string{"web01", "ok", "hi", "1 hosts: 1 ok"}, "", []string{"web*", "db01", "10.0.0.9"}},
		{"exec with a failed host exits 1", []string{"exec", "-t", "*", "--", "fail"}, 1,
			[]string{"unreachable", "connection refused"}, "", []string{"*"}},
		{"exec without targets", []string{"exec", "--", "true"}, 1, nil, "no targets", nil},
		{"exec without command", []string{"exec", "-t", "*"}, 1, nil, "no command", nil},
		{"bad output format", []string{"minions", "-o", "yaml"}, 1, nil, "want table or json", nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, "unknown command", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string{tt.args[0]}, conn...), tt.args[1:]...)
			code := Main(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit = %d; want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tt.wantErr != "" && !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q; want it to contain %q", stderr.String(), tt.wantErr)
			}
			if tt.wantErr != "" && strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
				t.Errorf("stderr has more than one line: %q", stderr.String())
			}
			if tt.wantTarget != nil && strings.Join(last.Targets, " ") != strings.Join(tt.wantTarget, " ") {
				t.Errorf("targets sent = %q; want %q", last.Targets, tt.wantTarget)
			}
		})
	}
}

func TestConnectionErrors(t *testing.T) {
	srv, _ := fakeMaster(t)
	cfg := filepath.Join(t.TempDir(), "none.toml")
	wrongFP := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no master", []string{"minions"}, nil, "no master URL"},
		{"no token", []string{"minions", "--master", srv.URL}, nil, "no API token"},
		{"wrong token", []string{"minions", "--master", srv.URL, "--token", "bad", "--master-fingerprint",
			pki.Fingerprint(srv.Certificate().Raw)}, nil, "invalid or expired token (HTTP 401)"},
		{"wrong fingerprint", []string{"minions", "--master", srv.URL, "--token", "good", "--master-fingerprint", wrongFP},
			nil, "does not match the pinned"},
		{"no fingerprint and no CA", []string{"minions", "--master", srv.URL, "--token", "good"}, nil, "master-fingerprint"},
		{"environment", []string{"minions"}, map[string]string{"FELIX_MASTER": srv.URL, "FELIX_TOKEN": "bad",
			"FELIX_MASTER_FINGERPRINT": pki.Fingerprint(srv.Certificate().Raw)}, "HTTP 401"},
		{"http URL", []string{"minions", "--master", "http://x", "--token", "t"}, nil, "want https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"FELIX_MASTER", "FELIX_TOKEN", "FELIX_MASTER_FINGERPRINT"} {
				t.Setenv(k, tt.env[k])
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append(tt.args, "--config", cfg), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), tt.wantErr)
			}
		})
	}
}

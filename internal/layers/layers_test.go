package layers

import (
	"encoding/json"
	"fmt"
	"io"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/felix-ops/felix/"

// layers lists felix's packages by layer, bottom first. A package may
// import packages of the layers below, never above, and of its own layer
// only where sameLayer allows it:
//
//	cmd → daemons and CLI → api → services → transport, inventory →
//	engine and host-side work → model
//
// Tests may import what they need to wire real parts together.
var layers = []struct {
	name     string
	packages []string
}{
	{"model: the shared vocabulary (stdlib only)", []string{"model"}},
	{"engine and host-side work", []string{"exec", "exec/local", "hostfile", "packages", "state", "facts", "content", "pki", "config", "daemon", "daemon/selfupdate",
		"version", "proto/felix/v1", "internal/backoff", "internal/hostset", "internal/testenv", "internal/layers"}},
	{"transport and inventory", []string{"transport", "transport/agent", "transport/ssh", "transport/ssh/sshtest",
		"inventory", "inventory/hostlist"}},
	{"services", []string{"jobs", "bootstrap", "notify", "metrics"}},
	{"HTTP API", []string{"api", "api/wire"}},
	{"daemons and CLI", []string{"master", "minion", "cli"}},
	{"mains", []string{"cmd/master", "cmd/minion", "cmd/felix"}},
	{"end-to-end tests", []string{"e2e"}},
}

// sameLayer lists the imports allowed between packages of one layer.
var sameLayer = map[string][]string{
	"api":    {"api/wire"},          // the handlers build the bodies they answer with
	"config": {"pki"},               // a minion's master_fingerprint is checked as pki reads it
	"daemon": {"daemon/selfupdate"}, // update checks and swaps the binary, then restarts
	"state":  {"packages"},          // a state's pkg resources are package jobs
}

// forbidden are imports the layers would allow but felix does not: the
// minion speaks to the master through model's types only, and links
// nothing of the HTTP API (see also cmd/minion's dependency guard).
var forbidden = map[string][]string{
	"minion": {"api", "api/wire"},
}

// goPackage is what the guard reads of `go list -json`.
type goPackage struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := osexec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// check returns one line per import that breaks the layers.
func check(pkgs []goPackage) []string {
	layer := map[string]int{}
	for i, l := range layers {
		for _, p := range l.packages {
			layer[p] = i
		}
	}
	var bad []string
	for _, p := range pkgs {
		name := strings.TrimPrefix(p.ImportPath, module)
		own, ok := layer[name]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s has no layer: add it to the table in internal/layers", name))
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				if first, _, _ := strings.Cut(imp, "/"); own == 0 && strings.Contains(first, ".") {
					bad = append(bad, fmt.Sprintf("%s imports %s: the model layer takes the standard library only", name, imp))
				}
				continue
			}
			switch l, ok := layer[dep]; {
			case ok && l > own:
				bad = append(bad, fmt.Sprintf("%s (%s) imports %s (%s), a higher layer", name, layers[own].name, dep, layers[l].name))
			case ok && l == own && !slices.Contains(sameLayer[name], dep):
				bad = append(bad, fmt.Sprintf("%s imports %s of its own layer (%s); allow it in sameLayer or move one of them", name, dep, layers[own].name))
			}
			for _, f := range forbidden[name] {
				if dep == f {
					bad = append(bad, fmt.Sprintf("%s imports %s, which it must not", name, dep))
				}
			}
		}
	}
	return bad
}

func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; want felix's", len(pkgs))
	}
	for _, b := range check(pkgs) {
		t.Error(b)
	}
}

// The guard itself must catch an upward import, a forbidden one and a
// package without a layer.
func TestCheckCatches(t *testing.T) {
	tests := []struct {
		pkg  goPackage
		want string
	}{
		{goPackage{module + "jobs", []string{module + "api/wire"}}, "jobs (services) imports api/wire (HTTP API), a higher layer"},
		{goPackage{module + "model", []string{module + "exec"}}, "model (model: the shared vocabulary (stdlib only)) imports exec"},
		{goPackage{module + "minion", []string{module + "api/wire"}}, "minion imports api/wire, which it must not"},
		{goPackage{module + "newpkg", nil}, "newpkg has no layer"},
		{goPackage{module + "inventory", []string{module + "transport"}}, "inventory imports transport of its own layer"},
		{goPackage{module + "model", []string{"time", "github.com/google/uuid"}}, "model imports github.com/google/uuid: the model layer"},
	}
	for _, tt := range tests {
		bad := check([]goPackage{tt.pkg})
		if len(bad) != 1 || !strings.HasPrefix(bad[0], tt.want) {
			t.Errorf("check(%s imports %v) = %q; want one line starting %q", tt.pkg.ImportPath, tt.pkg.Imports, bad, tt.want)
		}
	}
	if bad := check([]goPackage{{module + "api", []string{module + "jobs", module + "api/wire", module + "model", "fmt"}}}); len(bad) != 0 {
		t.Errorf("check(api imports jobs, api/wire, model) = %q; want nothing", bad)
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// jsonTail never lets a tail's JSON pass its limit, cuts only at rune
// boundaries, and keeps what fits.
func TestJSONTail(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
		cut   bool
	}{
		{"hello", 100, "hello", false},
		{"hello", 3, "llo", true},
		{"a\x00b", 7, "\x00b", true}, // NUL is \u0000: six bytes
		{`say "hi"`, 6, `"hi"`, true},
		{"<&>", 12, "&>", true},
		{"héllo", 4, "llo", true}, // é is two bytes: cut before it, never inside
		{"héllo", 5, "éllo", true},
		{"\xffok", 3, "ok", true}, // invalid UTF-8 becomes \ufffd: six bytes
		{"", 0, "", false},
	}
	for _, tt := range tests {
		got, cut := jsonTail([]byte(tt.in), tt.limit)
		if string(got) != tt.want || cut != tt.cut {
			t.Errorf("jsonTail(%q, %d) = %q, %v; want %q, %v", tt.in, tt.limit, got, cut, tt.want, tt.cut)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "\x00", "\"", "\\", "<", "é", "€", "\xff", "\n", "\u2028", "𝄞"}
	for range 500 {
		var b strings.Builder
		for range rng.IntN(300) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		limit := rng.IntN(400)
		tail, _ := jsonTail([]byte(b.String()), limit)
		enc, _ := json.Marshal(string(tail))
		if len(enc)-2 > limit || !strings.HasSuffix(b.String(), string(tail)) {
			t.Fatalf("jsonTail(%q, %d) = %q: %d bytes of JSON, or not a tail", b.String(), limit, tail, len(enc)-2)
		}
		if jsonLen(tail) < len(enc)-2 {
			t.Fatalf("jsonLen(%q) = %d; encoding/json writes %d", tail, jsonLen(tail), len(enc)-2)
		}
	}
}

// A callback stays bounded however much the hosts printed — even output
// that grows sixfold as JSON — and a small job's callback keeps it all.
func TestCallbackBodyBounded(t *testing.T) {
	job := inventory.Job{ID: "J1", ClientID: "seed", CmdLine: "x", State: model.JobDone}
	nuls := make([]byte, 70000) // each NUL is six bytes of JSON
	const hosts = 600
	rs := make([]model.Result, hosts)
	for i := range rs {
		rs[i] = model.Result{Host: "h" + strings.Repeat("x", i%7) + string(rune('a'+i%26)), State: model.StateOK, Stdout: nuls, Stderr: nuls}
	}
	rs[0].Stdout, rs[0].Stderr = []byte("small\n"), nil // a host with little output keeps all of it
	body, err := CallbackBody("cb-J1", job, rs)
	if err != nil {
		t.Fatal(err)
	}
	if max := CallbackMaxOutput + hosts*1024; len(body) > max {
		t.Errorf("callback of %d hosts is %d bytes; want at most %d", hosts, len(body), max)
	}
	var cb wire.Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		t.Fatal(err)
	}
	if cb.EventID != "cb-J1" || len(cb.Results) != hosts {
		t.Fatalf("callback = %s with %d results; want cb-J1 with %d", cb.EventID, len(cb.Results), hosts)
	}
	for _, r := range cb.Results {
		if r.Stdout == "small\n" {
			if r.Truncated {
				t.Errorf("host %s with 6 bytes of output truncated", r.Host)
			}
			continue
		}
		if !r.Truncated || len(r.Stdout) == 0 || len(r.Stdout) >= len(nuls) {
			t.Errorf("host %s: %d bytes of stdout, truncated %v; want a cut tail, truncated", r.Host, len(r.Stdout), r.Truncated)
		}
	}

	small := []model.Result{{Host: "web1", State: model.StateOK, Stdout: bytes.Repeat([]byte("line\n"), 1000)}}
	body, err = CallbackBody("cb-J2", job, small)
	if err != nil {
		t.Fatal(err)
	}
	cb = wire.Callback{}
	json.Unmarshal(body, &cb)
	if len(cb.Results) != 1 || cb.Results[0].Stdout != string(small[0].Stdout) || cb.Results[0].Truncated {
		t.Errorf("small callback = %+v; want the whole output, not truncated", cb.Results)
	}
}

// TestCallbackBodyBoundsPackages: a list on many hosts keeps each host's
// fair share of package entries in a callback, with its counts whole; a
// small report is kept whole and the results given are not changed.
func TestCallbackBodyBoundsPackages(t *testing.T) {
	job := inventory.Job{ID: "J1", CmdLine: "pkg list", CmdType: model.CmdPkg, State: model.JobDone}
	const hosts, installed = 200, 3000
	big := &model.PkgReport{Manager: model.PkgApt}
	for i := range installed {
		big.Packages = append(big.Packages, model.PkgChange{Name: "pkg" + strings.Repeat("x", i%5), After: "1.0", State: model.PkgPresent})
	}
	small := &model.PkgReport{Manager: model.PkgDnf, Packages: []model.PkgChange{{Name: "nginx", After: "1.0", State: model.PkgPresent}}}
	rs := make([]model.Result, hosts)
	for i := range rs {
		rs[i] = model.Result{Host: "h" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), State: model.StateOK, Packages: big}
	}
	rs[0].Packages = small
	body, err := CallbackBody("cb-J1", job, rs)
	if err != nil {
		t.Fatal(err)
	}
	var cb wire.Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		t.Fatal(err)
	}
	entries := 0
	for i, r := range cb.Results {
		entries += len(r.Packages.Packages)
		if i == 0 {
			if r.Truncated || len(r.Packages.Packages) != 1 {
				t.Errorf("host %s with one package: %d kept, truncated %v; want it whole", r.Host, len(r.Packages.Packages), r.Truncated)
			}
			continue
		}
		if want := CallbackMaxPackages / hosts; !r.Truncated || len(r.Packages.Packages) != want || r.Packages.Manager != model.PkgApt {
			t.Errorf("host %s: %d packages kept, truncated %v; want %d, truncated", r.Host, len(r.Packages.Packages), r.Truncated, want)
		}
	}
	if entries > CallbackMaxPackages {
		t.Errorf("callback holds %d package entries; want at most %d", entries, CallbackMaxPackages)
	}
	if len(big.Packages) != installed || rs[1].Truncated {
		t.Errorf("CallbackBody changed the results it was given")
	}
}

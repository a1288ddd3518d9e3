package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
)

// fakeFingerprint is a stable, well-formed fingerprint for a minion id.
// Register stores fingerprints and PEM as given, without parsing them.
func fakeFingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type testMinion struct {
	id    string
	addr  string
	ips   []string
	state string
}

// The inventory every Resolve test runs against.
var testMinions = []testMinion{
	{id: "web1", addr: "10.0.0.1:4506", ips: []string{"10.0.0.1", "192.168.1.1"}, state: inventory.StateAccepted},
	{id: "web2", addr: "10.0.0.2:4506", ips: []string{"10.0.0.2", "fd00::2"}, state: inventory.StateAccepted},
	{id: "web3", addr: "10.0.0.3:4506", ips: []string{"10.0.0.3"}, state: inventory.StatePending},
	{id: "web4", addr: "10.0.0.4:4506", ips: []string{"10.0.0.4"}, state: inventory.StateRejected},
	{id: "db1", addr: "10.0.1.1:4506", ips: []string{"10.0.1.1", "172.16.0.5"}, state: inventory.StateAccepted},
	// db2 reports web1's dial address as one of its own: a dial address wins.
	{id: "db2", addr: "db2.example:4506", ips: []string{"10.0.0.1", "172.16.0.6"}, state: inventory.StateAccepted},
	{id: "v6", addr: "[fd00::6]:4506", state: inventory.StateAccepted},
	// Every host reports loopback; docker hosts share 172.17.0.1.
	{id: "dock1", addr: "10.0.2.1:4506", ips: []string{"127.0.0.1", "fe80::1", "172.17.0.1"}, state: inventory.StateAccepted},
	{id: "dock2", addr: "10.0.2.2:4506", ips: []string{"127.0.0.1", "fe80::1", "172.17.0.1"}, state: inventory.StateAccepted},
}

// newTestStore opens an inventory in t.TempDir() holding testMinions.
func newTestStore(t *testing.T) *inventory.Store {
	t.Helper()
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatalf("open inventory: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	tokens := make(map[bool]string)
	for _, auto := range []bool{true, false} {
		tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: auto, Uses: -1}, now)
		if err != nil {
			t.Fatalf("create join token: %v", err)
		}
		tokens[auto] = tok
	}
	for _, m := range testMinions {
		reg := inventory.Registration{
			Minion: inventory.Minion{ID: m.id, Hostname: m.id, Addr: m.addr, IPs: m.ips,
				CertPEM: "not a real certificate", Fingerprint: fakeFingerprint(m.id)},
			JoinTokenHash: inventory.HashToken(tokens[m.state == inventory.StateAccepted]),
		}
		if _, _, err := store.Register(ctx, reg, now); err != nil {
			t.Fatalf("register %s: %v", m.id, err)
		}
		if m.state == inventory.StateRejected {
			if err := store.SetMinionState(ctx, m.id, m.state, now); err != nil {
				t.Fatalf("reject %s: %v", m.id, err)
			}
		}
	}
	return store
}

// accepted is the target an accepted test minion resolves to.
func accepted(id string) exec.Target {
	for _, m := range testMinions {
		if m.id == id {
			return exec.Target{ID: id, Addr: m.addr, Fingerprint: fakeFingerprint(id)}
		}
	}
	panic("no test minion " + id)
}

// notAccepted is the target a pending or rejected test minion resolves to.
func notAccepted(id string) exec.Target {
	t := accepted(id)
	t.Skip = exec.StateNotAccepted
	return t
}

func TestResolve(t *testing.T) {
	s := &Service{Store: newTestStore(t)}
	tests := []struct {
		name     string
		patterns []string
		want     []exec.Target
		wantErr  error
	}{
		{name: "exact id", patterns: []string{"web1"}, want: []exec.Target{accepted("web1")}},
		{name: "exact id with spaces", patterns: []string{"  web1 "}, want: []exec.Target{accepted("web1")}},
		{name: "pending id", patterns: []string{"web3"}, want: []exec.Target{notAccepted("web3")}},
		{name: "rejected id", patterns: []string{"web4"}, want: []exec.Target{notAccepted("web4")}},
		{name: "unknown id", patterns: []string{"nope"}, want: []exec.Target{{ID: "nope", Skip: exec.StateUnknown}}},
		{name: "glob takes accepted only", patterns: []string{"web*"}, want: []exec.Target{accepted("web1"), accepted("web2")}},
		{name: "glob class", patterns: []string{"db[12]"}, want: []exec.Target{accepted("db1"), accepted("db2")}},
		{name: "glob question mark", patterns: []string{"web?"}, want: []exec.Target{accepted("web1"), accepted("web2")}},
		{name: "ip of the dial address", patterns: []string{"10.0.0.2"}, want: []exec.Target{accepted("web2")}},
		{name: "dial address beats reported ip", patterns: []string{"10.0.0.1"}, want: []exec.Target{accepted("web1")}},
		{name: "ip reported only", patterns: []string{"172.16.0.5"}, want: []exec.Target{accepted("db1")}},
		{name: "ipv6 dial address", patterns: []string{"fd00::6"}, want: []exec.Target{accepted("v6")}},
		{name: "ipv6 reported", patterns: []string{"FD00:0::2"}, want: []exec.Target{accepted("web2")}},
		{name: "ip of a pending minion", patterns: []string{"10.0.0.3"}, want: []exec.Target{notAccepted("web3")}},
		{name: "ip of nothing", patterns: []string{"10.9.9.9"}, want: []exec.Target{{ID: "10.9.9.9", Addr: "10.9.9.9", Skip: exec.StateUnknown}}},
		{
			name:     "duplicates deduped",
			patterns: []string{"web1", "web1", "web*", "10.0.0.1", "192.168.1.1"},
			want:     []exec.Target{accepted("web1"), accepted("web2")},
		},
		{
			name:     "sorted by id",
			patterns: []string{"web2", "zz-unknown", "db1", "web3", "a-unknown", "web1"},
			want: []exec.Target{{ID: "a-unknown", Skip: exec.StateUnknown}, accepted("db1"), accepted("web1"),
				accepted("web2"), notAccepted("web3"), {ID: "zz-unknown", Skip: exec.StateUnknown}},
		},
		{name: "loopback is never matched by report", patterns: []string{"127.0.0.1"},
			want: []exec.Target{{ID: "127.0.0.1", Addr: "127.0.0.1", Skip: exec.StateUnknown}}},
		{name: "link-local is never matched by report", patterns: []string{"fe80::1"},
			want: []exec.Target{{ID: "fe80::1", Addr: "fe80::1", Skip: exec.StateUnknown}}},
		{name: "address reported by several minions", patterns: []string{"172.17.0.1"}, wantErr: ErrBadTarget},
		{name: "control character", patterns: []string{"web1\nweb2"}, wantErr: ErrBadTarget},
		{name: "glob matching nothing", patterns: []string{"zzz*"}, wantErr: ErrNoTargets},
		{name: "glob matching only pending and rejected", patterns: []string{"web[34]"}, wantErr: ErrNoTargets},
		{name: "bad glob", patterns: []string{"["}, wantErr: ErrBadTarget},
		{name: "bad glob among good", patterns: []string{"web1", "db[1"}, wantErr: ErrBadTarget},
		{name: "empty pattern", patterns: []string{"web1", " "}, wantErr: ErrBadTarget},
		{name: "no patterns", patterns: nil, wantErr: ErrNoTargets},
		{name: "empty list", patterns: []string{}, wantErr: ErrNoTargets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Resolve(context.Background(), tt.patterns)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want error %v", tt.patterns, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.patterns, err)
			}
			for i := range got {
				// A skipped host must say why; the exact words are not tested.
				if (got[i].Skip != "") != (got[i].Error != "") {
					t.Errorf("%s: Skip %q with Error %q; want an error exactly when skipped", got[i].ID, got[i].Skip, got[i].Error)
				}
				got[i].Error = ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q) =\n  %+v\nwant\n  %+v", tt.patterns, got, tt.want)
			}
		})
	}
}

func TestResolveEmptyInventory(t *testing.T) {
	store, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := &Service{Store: store}
	if _, err := s.Resolve(context.Background(), []string{"*"}); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Resolve(*) on an empty inventory = %v; want ErrNoTargets", err)
	}
	got, err := s.Resolve(context.Background(), []string{"web1"})
	if err != nil || len(got) != 1 || got[0].Skip != exec.StateUnknown {
		t.Errorf("Resolve(web1) on an empty inventory = %+v, %v; want web1 unknown", got, err)
	}
}

func TestNewJobID(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))
	a, b := NewJobID(now), NewJobID(now)
	if a == b {
		t.Errorf("two job ids at the same instant are equal: %s", a)
	}
	if want := "20240506T060809-"; len(a) != len(want)+12 || a[:len(want)] != want {
		t.Errorf("NewJobID = %q; want %s<12 hex digits> (UTC)", a, want)
	}
	if later := NewJobID(now.Add(time.Second)); later <= a {
		t.Errorf("NewJobID later = %q; want it to sort after %q", later, a)
	}
}

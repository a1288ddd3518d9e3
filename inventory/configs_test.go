package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConfigs: every revision is kept; a put of the latest body again is
// no new revision; lists, histories, reads by revision, deletes; the
// content stored revisions name.
func TestConfigs(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	sha := strings.Repeat("a", 64)
	put := func(name, body string, wantRev int, wantCreated bool) {
		t.Helper()
		c, created, err := s.PutConfig(ctx, name, []byte(body), "alice", now)
		if err != nil || c.Rev != wantRev || created != wantCreated || len(c.SHA256) != 64 {
			t.Fatalf("put %s %q = %+v, %v, %v; want rev %d, created %v", name, body, c, created, err, wantRev, wantCreated)
		}
	}
	put("web", "v1", 1, true)
	put("web", "v1", 1, false)
	put("web", "v2 source: sha256:"+sha, 2, true)
	put("db", "d1", 1, true)
	put("web", "v1", 3, true) // back to v1: a new revision all the same

	if c, err := s.GetConfig(ctx, "web", 0); err != nil || c.Rev != 3 || string(c.Body) != "v1" || c.CreatedBy != "alice" || !c.CreatedAt.Equal(now) {
		t.Errorf("latest web = %+v, %v", c, err)
	}
	if c, err := s.GetConfig(ctx, "web", 2); err != nil || c.Rev != 2 || !strings.HasPrefix(string(c.Body), "v2") {
		t.Errorf("web@2 = %+v, %v", c, err)
	}
	for _, q := range []struct {
		name string
		rev  int
	}{{"web", 9}, {"nope", 0}} {
		if _, err := s.GetConfig(ctx, q.name, q.rev); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s@%d = %v; want ErrNotFound", q.name, q.rev, err)
		}
	}
	list, err := s.Configs(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "db" || list[1].Name != "web" || list[1].Rev != 3 || list[1].Revisions != 3 || list[1].Body != nil {
		t.Errorf("Configs = %+v, %v", list, err)
	}
	hist, err := s.ConfigHistory(ctx, "web")
	if err != nil || len(hist) != 3 || hist[0].Rev != 3 || hist[2].Rev != 1 {
		t.Errorf("history = %+v, %v", hist, err)
	}
	if srcs, err := s.ConfigSources(ctx); err != nil || len(srcs) != 1 || srcs[0] != sha {
		t.Errorf("ConfigSources = %q, %v; want the one named", srcs, err)
	}
	if err := s.DeleteConfig(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConfig(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete again = %v; want ErrNotFound", err)
	}
	if _, err := s.ConfigHistory(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("history after delete = %v; want ErrNotFound", err)
	}
}

// TestPutConfigConcurrent: puts of one name side by side get distinct,
// consecutive revisions (max+1 in one write transaction), and the same
// body put by many at once is stored once — the others are told it is
// unchanged.
func TestPutConfigConcurrent(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const n = 16
	tests := []struct {
		name        string
		body        func(i int) string
		wantCreated int
	}{
		{"distinct bodies", func(i int) string { return fmt.Sprintf("v%d", i) }, n},
		{"one body", func(int) string { return "same" }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "-")
			var wg sync.WaitGroup
			revs := make([]int, n)
			created := make([]bool, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var c Config
					c, created[i], errs[i] = s.PutConfig(ctx, name, []byte(tt.body(i)), "alice", time.Now())
					revs[i] = c.Rev
				}()
			}
			wg.Wait()
			nCreated := 0
			seen := map[int]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("put %d: %v", i, errs[i])
				}
				if created[i] {
					nCreated++
					if seen[revs[i]] {
						t.Errorf("revision %d handed out twice", revs[i])
					}
					seen[revs[i]] = true
				}
			}
			if nCreated != tt.wantCreated {
				t.Errorf("%d puts created a revision; want %d", nCreated, tt.wantCreated)
			}
			hist, err := s.ConfigHistory(ctx, name)
			if err != nil || len(hist) != tt.wantCreated {
				t.Fatalf("history = %d revisions, %v; want %d", len(hist), err, tt.wantCreated)
			}
			for i, c := range hist {
				if want := tt.wantCreated - i; c.Rev != want {
					t.Errorf("history[%d].Rev = %d; want %d (consecutive, newest first)", i, c.Rev, want)
				}
			}
		})
	}
}

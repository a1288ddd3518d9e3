package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
)

// TestJobGolden holds the job tables and JSON to golden files (UPDATE=1
// rewrites them): a job that fits one page prints as it always did.
func TestJobGolden(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"job-j1", []string{"job", "j1"}, 0},
		{"job-jfail", []string{"job", "jfail"}, 0}, // felix job displays: 0 though a host failed
		{"job-jfail-json", []string{"job", "jfail", "-o", "json"}, 0},
		{"exec-fail", []string{"exec", "-t", "*", "--", "fail"}, 1},
		{"exec-json", []string{"exec", "-t", "*", "-o", "json", "--", "echo", "hi"}, 0},
		{"job-jpaged", []string{"job", "jpaged"}, 0},
		{"job-jpaged-no-fold", []string{"job", "jpaged", "--no-fold"}, 0},
		{"job-jpaged-json", []string{"job", "jpaged", "-o", "json"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, context.Background(), tt.args...)
			if code != tt.code || stderr != "" {
				t.Errorf("felix %s: exit %d, stderr %q; want %d and nothing", strings.Join(tt.args, " "), code, stderr, tt.code)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// testdata is the absolute path of ./testdata: tests may change directory.
var testdata, _ = filepath.Abs("testdata")

// golden compares got with testdata/NAME.golden, or writes it there with
// UPDATE=1.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdata, name+".golden")
	if os.Getenv("UPDATE") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (UPDATE=1 writes it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

// jobGETs returns the GETs of job id's pages among sent.
func jobGETs(sent []string, id string) []string {
	var out []string
	for _, r := range sent {
		if strings.HasPrefix(r, "GET /api/v1/jobs/"+id) && !strings.Contains(r, "/events") {
			out = append(out, r)
		}
	}
	return out
}

// TestJobPaged: felix job and felix exec read a job of five hosts from a
// master that pages them by two, print every host once, in order, a table
// per page or one JSON document equal to the whole job's, and exit 1 for
// its failed host.
func TestJobPaged(t *testing.T) {
	whole := fakeJobs["jpaged"]
	var wantJSON bytes.Buffer
	if err := printJSON(&wantJSON, whole); err != nil {
		t.Fatal(err)
	}
	pages := []string{"GET /api/v1/jobs/jpaged", "GET /api/v1/jobs/jpaged?hosts_after=h2", "GET /api/v1/jobs/jpaged?hosts_after=h4"}
	for _, tt := range []struct {
		name string
		args []string
		json bool
	}{
		{"job", []string{"job", "jpaged", "--no-fold"}, false},
		{"job folded", []string{"job", "jpaged"}, false},
		{"job json", []string{"job", "jpaged", "-o", "json"}, true},
		{"exec", []string{"exec", "-t", "*", "--no-fold", "--", "paged"}, false},
		{"exec folded", []string{"exec", "-t", "*", "--", "paged"}, false},
		{"exec json", []string{"exec", "-t", "*", "-o", "json", "--", "paged"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeMaster(t)
			code, stdout, stderr := f.run(t, context.Background(), tt.args...)
			want := 1 // h3 failed
			if tt.args[0] == "job" {
				want = 0 // felix job displays
			}
			if code != want || stderr != "" {
				t.Errorf("exit %d, stderr %q; want %d and nothing", code, stderr, want)
			}
			if got := jobGETs(f.sent(), "jpaged"); !slices.Equal(got, pages) {
				t.Errorf("GETs = %q; want the three pages %q", got, pages)
			}
			if tt.json {
				var j wire.Job
				if err := json.Unmarshal([]byte(stdout), &j); err != nil {
					t.Fatalf("stdout is not a JSON document: %v\n%s", err, stdout)
				}
				if stdout != wantJSON.String() {
					t.Errorf("stdout =\n%s\nwant the whole job as printJSON prints it:\n%s", stdout, wantJSON.String())
				}
				return
			}
			folded := !slices.Contains(tt.args, "--no-fold")
			last := -1
			for _, h := range []string{"h1", "h2", "h3", "h4", "h5"} {
				row := "│ " + h + " " // a table row
				if folded {
					row = h + " (1 host): " // a group's head: no two alike
				}
				i := strings.Index(stdout, row)
				if !folded && i < last || strings.Count(stdout, row) != 1 {
					t.Errorf("host %s: at %d (after %d), %d times; want once, in order\n%s", h, i, last, strings.Count(stdout, row), stdout)
				}
				last = i
			}
			if n, want := strings.Count(stdout, "│ HOST "), map[bool]int{false: 3, true: 0}[folded]; n != want {
				t.Errorf("%d tables; want %d (one per page unfolded, none folded)", n, want)
			}
			// felix job shows every delivery; exec only failed ones unless -v
			delivered := tt.args[0] == "job"
			if got := strings.Contains(stdout, "job jpaged: 5 hosts: 1 failed, 4 ok\ncallback: delivered (1 attempt)\n"); got != delivered {
				t.Errorf("summary and delivery shown: %v; want %v (the summary of all 5 hosts, then the delivery for felix job):\n%s", got, delivered, stdout)
			}
			if !strings.Contains(stdout, "job jpaged: 5 hosts: 1 failed, 4 ok\n") {
				t.Errorf("stdout lacks the summary of all 5 hosts:\n%s", stdout)
			}
		})
	}
}

// TestJobPagesMustMoveOn: a master whose next page does not move past the
// last host is an error, not an endless loop.
func TestJobPagesMustMoveOn(t *testing.T) {
	f := fakeMaster(t)
	code, _, stderr := f.run(t, context.Background(), "job", "jloop")
	if code != 1 || !strings.Contains(stderr, "does not come after") {
		t.Errorf("exit %d, stderr %q; want 1 and an error about the next page", code, stderr)
	}
	if got := jobGETs(f.sent(), "jloop"); len(got) != 2 {
		t.Errorf("GETs = %q; want two", got)
	}
}

// TestJobOutput: felix job output prints a host's stored stream as it is,
// byte for byte, with nothing added.
func TestJobOutput(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		args []string
		want string
		path string
	}{
		{[]string{"job", "output", "jpaged", "h4"}, "<four> & \"4\"\n", "GET /api/v1/jobs/jpaged/hosts/h4/output"},
		{[]string{"job", "output", "jpaged", "h3", "--stderr"}, "no such file\n", "GET /api/v1/jobs/jpaged/hosts/h3/output?stream=stderr"},
		{[]string{"job", "output", "jpaged", "h3"}, "", "GET /api/v1/jobs/jpaged/hosts/h3/output"},
	} {
		code, stdout, stderr := f.run(t, context.Background(), tt.args...)
		if sent := f.sent(); code != 0 || stdout != tt.want || stderr != "" || sent[len(sent)-1] != tt.path {
			t.Errorf("felix %s: exit %d, stdout %q, stderr %q, sent %q; want 0, %q, nothing, %q", strings.Join(tt.args, " "), code, stdout, stderr, sent[len(sent)-1], tt.want, tt.path)
		}
	}
}

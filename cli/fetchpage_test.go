package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
)

// TestFetchGolden holds fetch's table and JSON to golden files (UPDATE=1
// rewrites them).
func TestFetchGolden(t *testing.T) {
	one := []byte("web01.example\n")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"fetch", nil},
		{"fetch-json", []string{"-o", "json"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(fetchJob(okCopy("web01", one),
				wire.HostResult{Host: "web02", State: "failed", Transport: "ssh", Error: "open /etc/hostname: permission denied"}))
			f.store(one)
			t.Chdir(t.TempDir())
			out := "out" // relative: the same in every run
			code, stdout, stderr := f.run(t, append([]string{"fetch", "-t", "web*", "/etc/hostname", out}, tt.args...)...)
			if code != 1 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 1 and nothing", code, stderr)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestFetchPaged: fetch downloads the copies of every page's hosts and
// prints them all: folded (no saved paths), a row per host with its saved
// path (wide), or as one JSON document.
func TestFetchPaged(t *testing.T) {
	var results []wire.HostResult
	var contents [][]byte
	for i := 1; i <= 5; i++ {
		b := []byte(fmt.Sprintf("web%02d.example\n", i))
		contents = append(contents, b)
		results = append(results, okCopy(fmt.Sprintf("web%02d", i), b))
	}
	for _, format := range []string{"table", "wide", "json"} {
		t.Run(format, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(fetchJob(results...))
			f.pages = 2
			for _, b := range contents {
				f.store(b)
			}
			t.Chdir(t.TempDir())
			code, stdout, stderr := f.run(t, "fetch", "-t", "web*", "/etc/hostname", "out", "-o", format)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing\n%s", code, stderr, stdout)
			}
			saved := map[string]string{}
			for i, b := range contents {
				host := fmt.Sprintf("web%02d", i+1)
				saved[host] = filepath.Join("out", host, "hostname")
				if got, err := os.ReadFile(saved[host]); err != nil || !bytes.Equal(got, b) {
					t.Errorf("%s = %q, %v; want %q", saved[host], got, err, b)
				}
			}
			var gets []string
			for _, r := range f.take() {
				if strings.HasPrefix(r.Line, "GET /api/v1/jobs/") && !strings.HasSuffix(r.Line, "/events") {
					gets = append(gets, r.Line)
				}
			}
			if want := []string{"GET /api/v1/jobs/jfetch", "GET /api/v1/jobs/jfetch?hosts_after=web02", "GET /api/v1/jobs/jfetch?hosts_after=web04"}; !slices.Equal(gets, want) {
				t.Errorf("GETs = %q; want the pages %q", gets, want)
			}
			if format == "json" {
				var want bytes.Buffer
				printJSON(&want, struct {
					wire.Job
					Saved map[string]string `json:"saved"`
				}{fetchJob(results...), saved})
				if stdout != want.String() {
					t.Errorf("stdout =\n%s\nwant the whole job with saved:\n%s", stdout, want.String())
				}
				return
			}
			for _, p := range saved {
				if format == "table" {
					if strings.Contains(stdout, p) {
						t.Errorf("the folded table names %s: saved paths are for --no-fold and -o wide\n%s", p, stdout)
					}
					continue
				}
				if strings.Count(stdout, p) != 1 {
					t.Errorf("stdout names %s %d times; want once\n%s", p, strings.Count(stdout, p), stdout)
				}
			}
			if !strings.Contains(stdout, "job jfetch: 5 hosts: 5 ok") {
				t.Errorf("stdout lacks the summary of 5 hosts:\n%s", stdout)
			}
		})
	}
}
